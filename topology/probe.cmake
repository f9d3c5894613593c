target_sources(tamoe_topology PRIVATE ${CMAKE_CURRENT_LIST_DIR}/probe.cc ${CMAKE_CURRENT_LIST_DIR}/probe_fit.cc
  ${CMAKE_CURRENT_LIST_DIR}/probe_model.cc)
target_link_libraries(tamoe_topology PUBLIC Eigen3::Eigen)
