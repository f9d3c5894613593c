// The link graph and the fitted cost model of DESIGN.md section 3.
//
// The machine is a directed graph. Vertices are endpoints (ranks; vertex id == rank) and shared
// elements (a node's NVLink/NVSwitch or shared-memory fabric, a PCIe switch, a NIC, a leaf
// switch, a spine, the memory system of a host shared by virtual nodes). Links are directed
// edges with a bandwidth and a latency. The route from rank i to rank j is the path with the
// fewest links that passes through no other rank (ties go to the lower vertex id), found by BFS
// and cached per source; a description can also set any pair's route explicitly.
//
// For a traffic matrix D (bytes, D[i*P+j] from rank i to rank j) the modeled time is
//   T(D) = max_l sum_{(i,j) routed through l} D_ij / B_l(D_ij)
//          + latency_overlap * max_i sum_{j != i, D_ij > 0} lat(route_ij)
// where B_l(m) is the link bandwidth for messages of m bytes (a constant unless the link carries a
// measured curve, see Link::bw_curve) and lat(route)
// sums the latencies along the route. Traffic from a rank to itself uses the rank's memory copy
// bandwidth when one is set (self_bw_gbps > 0) and is free otherwise; with self_on_ingress it is
// instead charged to the rank's first in-link, as on a host where the receiving CPU does every
// copy (shared-memory MPI with single-copy transfers), so local copies compete with receives.
//
// Each rank also carries its place in the hierarchy (node, and optionally leaf switch) so
// planners and reports can speak of levels: 0 self, 1 same node, 2 same leaf switch, 3 beyond.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace tamoe::topo {

struct Link {
  std::string name;  // "rank3->node0", "node1/nic->leaf0"
  int from = -1;     // vertex ids
  int to = -1;
  double bw_gbps = 0;  // GB/s, 1e9 bytes per second
  double lat_us = 0;   // microseconds added to a message that crosses this link
  // Optional measured bandwidth by size, (bytes, GB/s) with increasing bytes (the size is the
  // message or the sender's volume, see CostModel::CurveKey); between
  // points the bandwidth is interpolated in log(bytes), outside them clamped. Empty: bw_gbps.
  // Captures protocol switches and cache effects that one alpha-beta line cannot.
  std::vector<std::pair<double, double>> bw_curve;
  double bw_at(double message_bytes) const;  // GB/s
};

struct Vertex {
  std::string name;  // "rank3", "node1", "leaf0", "spine"
  std::string kind;  // "rank", "fabric", "nic", "host", "switch", "spine", ... (free text)
};

struct ProbeClass {
  std::string name;        // "node", "remote", "node-concurrent", ...
  double lat_us = 0;       // fitted alpha
  double bw_gbps = 0;      // fitted 1/beta
  double fit_rel_err = 0;  // RMS relative error of the fit over the sweep
  int pairs = 0;           // pairs sampled
};

struct Prediction {
  double seconds = 0;            // total modeled time
  double bandwidth_seconds = 0;  // max over links of load / bandwidth
  double latency_seconds = 0;    // latency term
  int bottleneck_link = -1;      // link id of the max (-1: self copies or no traffic)
};

class CostModel {
 public:
  CostModel() = default;
  // Ranks 0..P-1 are vertices "rank<i>" of kind "rank", each on node i (until set_location).
  explicit CostModel(int nranks);

  // Building. Errors (tamoe::Error) name the vertex or link and the bad value.
  int add_vertex(const std::string& name, const std::string& kind);
  // One directed link; returns its id.
  int add_link(int from, int to, double bw_gbps, double lat_us, const std::string& name = "");
  // Both directions (a->b with bw_ab, b->a with bw_ba); returns the id of a->b (b->a is id+1).
  int connect(int a, int b, double bw_ab_gbps, double bw_ba_gbps, double lat_us);
  void set_location(int rank, int node, int leaf = 0);
  void set_self_bw_gbps(double bw);
  void set_bw_curve(int link, std::vector<std::pair<double, double>> curve);
  // What a link's bw_curve is indexed by: the message size (protocol switches) or the bytes the
  // sending rank moves in the whole exchange (working-set effects of copies through CPU caches).
  enum class CurveKey { message, rank_volume };
  void set_curve_key(CurveKey k) { curve_key_ = k; }
  CurveKey curve_key() const { return curve_key_; }
  void set_self_on_ingress(bool on) { self_on_ingress_ = on; }
  bool self_on_ingress() const { return self_on_ingress_; }
  void set_latency_overlap(double f);
  // Replaces the BFS route of (i, j) with explicit link ids that must form a path i -> j.
  void set_route(int i, int j, const std::vector<int>& links);
  void set_source(const std::string& s) { source_ = s; }
  void set_probe_classes(std::vector<ProbeClass> c) { probe_classes_ = std::move(c); }
  // Checks that every rank reaches every other rank and every number is sane; throws otherwise.
  void validate(const std::string& where = "cost model") const;

  // Queries.
  int nranks() const { return nranks_; }
  int nvertices() const { return static_cast<int>(vertices_.size()); }
  int nlinks() const { return static_cast<int>(links_.size()); }
  const Vertex& vertex(int v) const { return vertices_.at(v); }
  const Link& link(int l) const { return links_.at(l); }
  const std::vector<Link>& links() const { return links_; }
  double self_bw_gbps() const { return self_bw_gbps_; }
  double latency_overlap() const { return latency_overlap_; }
  const std::string& source() const { return source_; }
  const std::vector<ProbeClass>& probe_classes() const { return probe_classes_; }
  int find_vertex(const std::string& name) const;  // -1 if absent
  int node_of(int rank) const { return node_.at(rank); }
  int leaf_of(int rank) const { return leaf_.at(rank); }
  int nnodes() const;
  // 0 self, 1 same node, 2 same leaf switch, 3 beyond.
  int pair_level(int i, int j) const;
  static const char* level_name(int level);  // "self", "node", "leaf", "remote"

  // Links used by traffic from rank i to rank j (empty for i == j). Throws if unreachable.
  const std::vector<int>& route(int i, int j) const;
  double route_latency_us(int i, int j) const;

  // The model. D is P*P bytes, row-major (D[i*P + j] from i to j).
  Prediction predict(const std::vector<double>& D) const;
  double predict_seconds(const std::vector<double>& D) const { return predict(D).seconds; }
  // Per-link load in bytes for D.
  std::vector<double> link_loads(const std::vector<double>& D) const;

  // JSON, format "tamoe.cost_model" version 1. from_json validates and names the bad field.
  nlohmann::json to_json() const;
  static CostModel from_json(const nlohmann::json& j, const std::string& where = "cost model");
  void save(const std::string& path) const;
  static CostModel load(const std::string& path);

 private:
  void compute_routes_from(int src) const;
  // Calls f(link, bytes, sender's row total) for every link every message of D crosses (self
  // copies included when self_on_ingress); validates D.
  template <typename F>
  void for_each_hop(const std::vector<double>& D, F&& f) const;
  int nranks_ = 0;
  std::vector<Vertex> vertices_;
  std::vector<Link> links_;
  std::vector<std::vector<int>> out_;  // out_[v] = link ids leaving v
  std::vector<int> node_, leaf_;
  double self_bw_gbps_ = 0;
  double latency_overlap_ = 1.0;
  bool self_on_ingress_ = false;
  CurveKey curve_key_ = CurveKey::message;
  std::string source_ = "unknown";
  std::vector<ProbeClass> probe_classes_;
  // routes_[i*P + j]; filled per source on first use (explicit routes are stored at once).
  mutable std::vector<std::vector<int>> routes_;
  mutable std::vector<char> routed_;  // per source: BFS done
  std::vector<char> explicit_;        // per pair: set_route was used
};

}  // namespace tamoe::topo
