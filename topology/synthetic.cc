#include "topology/synthetic.h"

#include <cmath>
#include <sstream>

#include "runtime/error.h"
#include "runtime/params.h"

namespace tamoe::topo {

namespace {
void check_positive(double v, const char* field) {
  if (!std::isfinite(v) || v <= 0)
    fail(Status::invalid_argument, std::string("synthetic cluster ") + field,
         "a positive finite number", str(v));
}
void check_latency(double v, const char* field) {
  if (!std::isfinite(v) || v < 0)
    fail(Status::invalid_argument, std::string("synthetic cluster ") + field,
         "a non-negative finite latency", str(v));
}
}  // namespace

CostModel make_synthetic(const SyntheticCluster& c) {
  if (c.nodes < 1)
    fail(Status::invalid_argument, "synthetic cluster nodes", "at least 1", str(c.nodes));
  if (c.ranks_per_node < 1)
    fail(Status::invalid_argument, "synthetic cluster rpn", "at least 1 rank per node",
         str(c.ranks_per_node));
  check_positive(c.intra_bw_gbps, "intra");
  check_positive(c.nic_bw_gbps, "nic");
  check_latency(c.intra_lat_us, "intra_lat");
  check_latency(c.nic_lat_us, "nic_lat");
  check_latency(c.switch_lat_us, "switch_lat");
  if (c.nodes_per_leaf < 0)
    fail(Status::invalid_argument, "synthetic cluster leaf", "0 (one switch) or nodes per leaf",
         str(c.nodes_per_leaf));
  if (!std::isfinite(c.oversubscription) || c.oversubscription < 1)
    fail(Status::invalid_argument, "synthetic cluster oversub", "an oversubscription ratio >= 1",
         str(c.oversubscription));

  const int n = c.nodes, m = c.ranks_per_node;
  CostModel model(n * m);
  model.set_source("synthetic " + to_string(c));
  const int per_leaf = c.nodes_per_leaf == 0 ? n : c.nodes_per_leaf;
  const int nleaves = (n + per_leaf - 1) / per_leaf;
  std::vector<int> leaves;
  for (int s = 0; s < nleaves; ++s)
    leaves.push_back(model.add_vertex("leaf" + std::to_string(s), "switch"));
  if (nleaves > 1) {
    int spine = model.add_vertex("spine", "spine");
    const double node_nic_gbps = c.nic_bw_gbps * (c.nic_per_rank ? m : 1);
    for (int s = 0; s < nleaves; ++s) {
      int nodes_here = std::min(per_leaf, n - s * per_leaf);
      double up = nodes_here * node_nic_gbps / c.oversubscription;
      model.connect(leaves[s], spine, up, up, c.switch_lat_us);
    }
  }
  for (int node = 0; node < n; ++node) {
    int leaf = leaves[node / per_leaf];
    int fabric = model.add_vertex("node" + std::to_string(node), "fabric");
    int shared_nic = -1;
    if (!c.nic_per_rank) {
      shared_nic = model.add_vertex("node" + std::to_string(node) + "/nic", "nic");
      model.connect(shared_nic, leaf, c.nic_bw_gbps, c.nic_bw_gbps, c.nic_lat_us);
    }
    for (int local = 0; local < m; ++local) {
      int r = node * m + local;
      model.set_location(r, node, node / per_leaf);
      if (m > 1) model.connect(r, fabric, c.intra_bw_gbps, c.intra_bw_gbps, c.intra_lat_us / 2);
      if (c.nic_per_rank) {
        int nic = model.add_vertex("rank" + std::to_string(r) + "/nic", "nic");
        // The NIC's own bandwidth sits on the rank->nic link; nic->leaf is the cable at the same
        // rate.
        model.connect(r, nic, c.nic_bw_gbps, c.nic_bw_gbps, c.nic_lat_us / 2);
        model.connect(nic, leaf, c.nic_bw_gbps, c.nic_bw_gbps, c.nic_lat_us / 2);
      } else {
        // Ranks reach the shared NIC through the host (PCIe); that hop is not the bottleneck.
        model.connect(r, shared_nic, c.intra_bw_gbps, c.intra_bw_gbps, 0);
      }
    }
  }
  model.validate("synthetic cluster");
  return model;
}

SyntheticCluster parse_synthetic_cluster(const std::string& spec) {
  SyntheticCluster c;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" \t") == std::string::npos) continue;
    size_t eq = item.find('=');
    std::string where = "synthetic cluster '" + spec + "'";
    if (eq == std::string::npos)
      fail(Status::invalid_input, where, "key=value items", "'" + item + "'");
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    k.erase(0, k.find_first_not_of(" \t"));
    k.erase(k.find_last_not_of(" \t") + 1);
    std::string w = where + " key " + k;
    if (k == "nodes")
      c.nodes = static_cast<int>(parse_int(v, w));
    else if (k == "rpn")
      c.ranks_per_node = static_cast<int>(parse_int(v, w));
    else if (k == "intra")
      c.intra_bw_gbps = parse_real(v, w);
    else if (k == "intra_lat")
      c.intra_lat_us = parse_real(v, w);
    else if (k == "nic")
      c.nic_bw_gbps = parse_real(v, w);
    else if (k == "nic_lat")
      c.nic_lat_us = parse_real(v, w);
    else if (k == "shared_nic")
      c.nic_per_rank = !parse_bool(v, w);
    else if (k == "leaf")
      c.nodes_per_leaf = static_cast<int>(parse_int(v, w));
    else if (k == "oversub")
      c.oversubscription = parse_real(v, w);
    else if (k == "switch_lat")
      c.switch_lat_us = parse_real(v, w);
    else
      fail(Status::invalid_input, where,
           "keys nodes, rpn, intra, intra_lat, nic, nic_lat, shared_nic, leaf, oversub, switch_lat",
           "'" + k + "'");
  }
  return c;
}

std::string to_string(const SyntheticCluster& c) {
  return str("nodes=", c.nodes, ",rpn=", c.ranks_per_node, ",intra=", c.intra_bw_gbps,
             ",intra_lat=", c.intra_lat_us, ",nic=", c.nic_bw_gbps, ",nic_lat=", c.nic_lat_us,
             ",shared_nic=", c.nic_per_rank ? 0 : 1, ",leaf=", c.nodes_per_leaf,
             ",oversub=", c.oversubscription, ",switch_lat=", c.switch_lat_us);
}

}  // namespace tamoe::topo
