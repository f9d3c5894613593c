// Probe benchmarks over MPI: ping-pong size sweeps per link class fitted to
// t(bytes) = alpha + bytes / bw, and concurrent probes in which every rank sends at once (inside
// its node, then off-node) to expose shared elements such as a NIC used by all ranks of a node or
// the memory system of a host. All functions here are collective over the cluster's world.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "topology/cluster.h"
#include "topology/cost_model.h"
#include "topology/probe_transport.h"

namespace tamoe::topo {

struct ProbePoint {
  int64_t bytes = 0;
  double seconds = 0;  // median one-way time (half a round trip)
};

struct AlphaBetaFit {
  double alpha_s = 0;  // latency
  double bw_bytes_per_s = 0;
  double rel_rms_err = 0;  // RMS of (fit - measured) / measured over the points
  double predict(double bytes) const { return alpha_s + bytes / bw_bytes_per_s; }
};
// Least squares in relative error (small and large messages weigh the same). Needs >= 2 points
// with distinct sizes; throws tamoe::Error otherwise.
AlphaBetaFit fit_alpha_beta(const std::vector<ProbePoint>& points);

struct ProbeOptions {
  double budget_s = 60;  // whole probe; sweeps are cut short (largest sizes first kept) past it
  int max_pairs_per_class = 64;  // sampled pairs per class (thousands of ranks need not probe all)
  int iters = 20;                // timed repetitions per point (median kept)
  int64_t min_bytes = 8;
  int64_t max_bytes = 4 << 20;
  int64_t concurrent_bytes = 4 << 20;  // message of the concurrent probes
  uint64_t seed = 12345;
  bool progress = true;  // rank 0 prints progress lines to stderr
  // Reads TAMOE_PROBE_* from the parameter registry.
  static ProbeOptions from_params();
};

struct ProbeClassResult {
  std::string name;  // "node", "host", "remote"
  std::vector<std::pair<int, int>> pairs;
  std::vector<ProbePoint> points;  // median over pairs per size
  AlphaBetaFit fit;
};

struct ProbeResult {
  std::vector<ProbeClassResult> classes;
  // Per-rank bandwidth (bytes/s each way) when every rank sends at once to all ranks of its node /
  // to all ranks of other nodes, and the memory copy bandwidth of a rank while all copy at once.
  double node_concurrent_bw = 0;
  double offnode_concurrent_bw = 0;
  double copy_concurrent_bw = 0;
  // The same per message size: (message bytes, per-rank bytes/s), increasing sizes.
  std::vector<std::pair<double, double>> node_concurrent_curve, offnode_concurrent_curve;
  double node_concurrent_alpha_s = 0;  // fitted per-message time under concurrency
  double offnode_concurrent_alpha_s = 0;
  // Time of a uniform alltoall of 8-byte messages, for the latency overlap.
  double small_alltoall_s = 0;
  double elapsed_s = 0;
  std::string transport;             // "mpi" or "nccl"
  bool receiver_cpu_copies = false;  // see ProbeTransport
  bool budget_exhausted = false;
  const ProbeClassResult* find(const std::string& name) const;
};

// Runs every probe through `transport`. Collective; every rank returns the same result.
ProbeResult run_probe(const Cluster& cluster, const ProbeOptions& opts, ProbeTransport& transport);
// The same through MPI on host memory.
ProbeResult run_probe(const Cluster& cluster, const ProbeOptions& opts);

// Builds the link graph from the probe: per rank a port into its node's fabric, per node an
// uplink ("nic") to its host's switch, per host an uplink to the network when there are several
// hosts. Ports and uplinks carry the concurrent probes' bandwidth-by-size curves. Collective-free:
// uses only the cluster's layout and the (identical) probe result.
CostModel build_cost_model(const Cluster& cluster, const ProbeResult& probe);

// Layout-only variant for tests and replay: node_of[r], host_of[r] for each rank.
CostModel build_cost_model(const std::vector<int>& node_of, const std::vector<int>& host_of,
                           const ProbeResult& probe);

// Measured median time of MPI_Alltoallv for a traffic matrix (bytes, P*P, row = sender), over
// `iters` repetitions after one warm-up. Collective; every rank returns the same value.
double measure_alltoallv(MPI_Comm comm, const std::vector<double>& traffic, int iters);

}  // namespace tamoe::topo
