// A synthetic cluster generator: n nodes x m ranks, a per-rank NIC ("rails") or one NIC shared by
// the ranks of a node, leaf switches and a spine with oversubscription. It gives the planner and
// the simulations a cost model without probing anything.
//
// Shape of the graph it builds (bandwidths in GB/s):
//   rank --intra_bw--> node fabric --intra_bw--> rank                (same node)
//   rank --nic_bw--> nic --> leaf switch --> nic --> rank           (nic per rank)
//   rank --> shared node nic (nic_bw) --> leaf switch --> ...        (shared nic)
//   leaf --uplink--> spine --> leaf, uplink = nodes_per_leaf * node_nic_bw / oversubscription
#pragma once

#include <string>

#include "topology/cost_model.h"

namespace tamoe::topo {

struct SyntheticCluster {
  int nodes = 2;
  int ranks_per_node = 8;
  double intra_bw_gbps = 450;  // per rank port into the node fabric (NVLink)
  double intra_lat_us = 3;
  bool nic_per_rank = true;  // false: one NIC per node shared by its ranks
  double nic_bw_gbps = 50;   // per NIC
  double nic_lat_us = 5;
  int nodes_per_leaf = 0;       // 0: all nodes on one switch, no spine
  double oversubscription = 1;  // leaf downlink capacity : uplink capacity
  double switch_lat_us = 1;

  int nranks() const { return nodes * ranks_per_node; }
};

// Builds and validates the model; errors name the bad field.
CostModel make_synthetic(const SyntheticCluster& c);

// "nodes=2,rpn=8,intra=450,nic=50,shared_nic=0,leaf=16,oversub=2" (any subset; keys as in
// SyntheticCluster: nodes, rpn, intra, intra_lat, nic, nic_lat, shared_nic, leaf, oversub,
// switch_lat). Throws tamoe::Error naming the key and the value on a bad string.
SyntheticCluster parse_synthetic_cluster(const std::string& spec);
std::string to_string(const SyntheticCluster& c);

}  // namespace tamoe::topo
