# Dispatch/combine permute kernels (owned by collectives), added to routing's tamoe_kernels.
target_sources(tamoe_kernels PRIVATE ${CMAKE_CURRENT_LIST_DIR}/permute.cu)
