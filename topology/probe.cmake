target_sources(tamoe_topology PRIVATE ${CMAKE_CURRENT_LIST_DIR}/probe.cc ${CMAKE_CURRENT_LIST_DIR}/probe_fit.cc
  ${CMAKE_CURRENT_LIST_DIR}/probe_model.cc ${CMAKE_CURRENT_LIST_DIR}/probe_transport_mpi.cc)
target_link_libraries(tamoe_topology PUBLIC Eigen3::Eigen)
if(TAMOE_HAVE_CUDA)
  target_sources(tamoe_topology PRIVATE ${CMAKE_CURRENT_LIST_DIR}/probe_transport_nccl.cc)
  target_link_libraries(tamoe_topology PUBLIC tamoe_nccl)
endif()
