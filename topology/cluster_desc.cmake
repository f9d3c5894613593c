target_sources(tamoe_topology PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cluster_desc.cc)
