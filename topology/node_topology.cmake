# Node discovery (hwloc) and, with CUDA, the mapping of CUDA devices onto hwloc's PCI GPUs.
target_sources(tamoe_topology PRIVATE ${CMAKE_CURRENT_LIST_DIR}/node_topology.cc)
target_link_libraries(tamoe_topology PUBLIC PkgConfig::HWLOC)
if(TAMOE_HAVE_CUDA)
  target_sources(tamoe_topology PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cuda_devices.cc)
  target_link_libraries(tamoe_topology PUBLIC CUDA::cudart)
endif()
