// From probe measurements to a link graph (see probe.h for the shape).
#include <algorithm>
#include <map>

#include "runtime/error.h"
#include "topology/probe.h"

namespace tamoe::topo {

namespace {
double class_alpha_us(const ProbeResult& p, const std::string& name, double fallback_us) {
  const ProbeClassResult* c = p.find(name);
  return c ? c->fit.alpha_s * 1e6 : fallback_us;
}
// A per-rank bytes/s curve as GB/s for a link shared by `ranks` ranks.
std::vector<std::pair<double, double>> scaled(const std::vector<std::pair<double, double>>& c,
                                              int ranks) {
  std::vector<std::pair<double, double>> out;
  for (const auto& [bytes, bw] : c) out.push_back({bytes, bw * ranks / 1e9});
  return out;
}
double class_bw(const ProbeResult& p, const std::string& name) {
  const ProbeClassResult* c = p.find(name);
  return c ? c->fit.bw_bytes_per_s : 0.0;
}
}  // namespace

CostModel build_cost_model(const Cluster& cluster, const ProbeResult& probe) {
  std::vector<int> node_of(cluster.size()), host_of(cluster.size());
  for (int r = 0; r < cluster.size(); ++r) {
    node_of[r] = cluster.node_of(r);
    host_of[r] = cluster.host_of(r);
  }
  return build_cost_model(node_of, host_of, probe);
}

CostModel build_cost_model(const std::vector<int>& node_of, const std::vector<int>& host_of,
                           const ProbeResult& probe) {
  const int P = static_cast<int>(node_of.size());
  if (P == 0 || host_of.size() != node_of.size())
    fail(Status::invalid_argument, "build_cost_model",
         "node_of and host_of of the same non-zero length",
         str(node_of.size(), " and ", host_of.size()));
  int nnodes = 0, nhosts = 0;
  for (int r = 0; r < P; ++r) {
    nnodes = std::max(nnodes, node_of[r] + 1);
    nhosts = std::max(nhosts, host_of[r] + 1);
  }
  std::vector<int> node_size(nnodes, 0), node_host(nnodes, -1);
  for (int r = 0; r < P; ++r) {
    node_size[node_of[r]]++;
    node_host[node_of[r]] = host_of[r];
  }

  // Per-rank port: the bandwidth a rank reaches while every rank sends at once (this is what an
  // alltoall sees; ping-pong alone overstates it where ranks share cores or memory).
  double port_bw = probe.node_concurrent_bw;
  if (port_bw <= 0) port_bw = probe.offnode_concurrent_bw;
  if (port_bw <= 0) port_bw = std::max(class_bw(probe, "node"), class_bw(probe, "host"));
  if (port_bw <= 0) port_bw = class_bw(probe, "remote");
  if (port_bw <= 0) port_bw = probe.copy_concurrent_bw;
  if (port_bw <= 0)
    fail(Status::invalid_input, "probe result", "at least one measured bandwidth",
         "none (was the probe run?)");
  // Per-node uplink: every rank of the node sends off-node at once.
  double off_bw = probe.offnode_concurrent_bw > 0 ? probe.offnode_concurrent_bw : port_bw;

  const double a_node = class_alpha_us(probe, "node", 0);
  const double a_host = class_alpha_us(probe, "host", a_node);
  const double a_remote = class_alpha_us(probe, "remote", a_host);

  CostModel m(P);
  m.set_source(probe.transport.empty() ? "probe" : "probe:" + probe.transport);
  std::vector<int> fabric(nnodes), host_sw(nhosts);
  for (int h = 0; h < nhosts; ++h) host_sw[h] = m.add_vertex("host" + std::to_string(h), "host");
  int network = nhosts > 1 ? m.add_vertex("network", "switch") : -1;
  for (int n = 0; n < nnodes; ++n) {
    fabric[n] = m.add_vertex("node" + std::to_string(n), "fabric");
    double up = off_bw * std::max(1, node_size[n]) / 1e9;
    int l = m.connect(fabric[n], host_sw[node_host[n]], up, up, std::max(0.0, a_host - a_node) / 2);
    if (!probe.offnode_concurrent_curve.empty()) {
      auto c = scaled(probe.offnode_concurrent_curve, std::max(1, node_size[n]));
      m.set_bw_curve(l, c);
      m.set_bw_curve(l + 1, c);
    }
  }
  if (network >= 0) {
    std::vector<double> host_up(nhosts, 0);
    for (int n = 0; n < nnodes; ++n) host_up[node_host[n]] += off_bw * node_size[n] / 1e9;
    for (int h = 0; h < nhosts; ++h)
      m.connect(host_sw[h], network, host_up[h], host_up[h], std::max(0.0, a_remote - a_host) / 2);
  }
  for (int r = 0; r < P; ++r) {
    int l = m.connect(r, fabric[node_of[r]], port_bw / 1e9, port_bw / 1e9, a_node / 2);
    const auto& pc = !probe.node_concurrent_curve.empty() ? probe.node_concurrent_curve
                                                          : probe.offnode_concurrent_curve;
    if (!pc.empty()) {
      auto c = scaled(pc, 1);
      m.set_bw_curve(l, c);
      m.set_bw_curve(l + 1, c);
    }
    m.set_location(r, node_of[r], host_of[r]);
  }
  m.set_self_bw_gbps(probe.copy_concurrent_bw / 1e9);
  m.set_self_on_ingress(probe.receiver_cpu_copies);
  m.set_curve_key(CostModel::CurveKey::rank_volume);

  std::vector<ProbeClass> classes;
  for (const auto& c : probe.classes)
    classes.push_back({c.name, c.fit.alpha_s * 1e6, c.fit.bw_bytes_per_s / 1e9, c.fit.rel_rms_err,
                       static_cast<int>(c.pairs.size())});
  if (probe.node_concurrent_bw > 0)
    classes.push_back({"node-concurrent", 0, probe.node_concurrent_bw / 1e9, 0, P});
  if (probe.offnode_concurrent_bw > 0)
    classes.push_back({"offnode-concurrent", 0, probe.offnode_concurrent_bw / 1e9, 0, P});
  classes.push_back({"copy-concurrent", 0, probe.copy_concurrent_bw / 1e9, 0, P});
  m.set_probe_classes(classes);

  // Latency overlap: how much of the summed per-message latency a small alltoall really costs.
  if (probe.small_alltoall_s > 0) {
    std::vector<double> D(static_cast<size_t>(P) * P, 8.0);
    m.set_latency_overlap(1.0);
    double lat = m.predict(D).latency_seconds;
    if (lat > 0) m.set_latency_overlap(std::clamp(probe.small_alltoall_s / lat, 0.0, 1.0));
  }
  m.validate("probed cost model");
  return m;
}

}  // namespace tamoe::topo
