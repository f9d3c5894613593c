#include <cmath>
#include <random>

#include "catch_compat.h"
#include "runtime/error.h"
#include "topology/probe.h"

using namespace tamoe::topo;

TEST_CASE("alpha-beta fit recovers latency and bandwidth", "[probe][fit]") {
  const double alpha = 3e-6, bw = 12e9;
  std::vector<ProbePoint> pts;
  for (int64_t b = 8; b <= (4 << 20); b *= 4) pts.push_back({b, alpha + b / bw});
  AlphaBetaFit f = fit_alpha_beta(pts);
  CHECK(f.alpha_s == Catch::Approx(alpha).epsilon(1e-9));
  CHECK(f.bw_bytes_per_s == Catch::Approx(bw).epsilon(1e-9));
  CHECK(f.rel_rms_err < 1e-9);
}

TEST_CASE("alpha-beta fit with noise reports its error", "[probe][fit]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> noise(0.9, 1.1);
  std::vector<ProbePoint> pts;
  for (int64_t b = 8; b <= (4 << 20); b *= 2) pts.push_back({b, (2e-6 + b / 5e9) * noise(rng)});
  AlphaBetaFit f = fit_alpha_beta(pts);
  CHECK(f.bw_bytes_per_s == Catch::Approx(5e9).epsilon(0.1));
  CHECK(f.alpha_s == Catch::Approx(2e-6).epsilon(0.15));
  CHECK(f.rel_rms_err > 0.005);
  CHECK(f.rel_rms_err < 0.1);
}

TEST_CASE("alpha-beta fit rejects too few or bad points", "[probe][fit][bad-input]") {
  CHECK_THROWS_AS(fit_alpha_beta({{8, 1e-6}}), tamoe::Error);
  CHECK_THROWS_AS(fit_alpha_beta({{8, 1e-6}, {64, -1.0}}), tamoe::Error);
  CHECK_THROWS_AS(fit_alpha_beta({{8, 1e-6}, {64, NAN}}), tamoe::Error);
}

TEST_CASE("probed cost model has ports, node uplinks and the measured numbers", "[probe][model]") {
  ProbeResult r;
  r.transport = "mpi";
  r.receiver_cpu_copies = true;
  r.node_concurrent_bw = 4e9;
  r.offnode_concurrent_bw = 1e9;
  r.copy_concurrent_bw = 10e9;
  ProbeClassResult node;
  node.name = "node";
  node.fit = {2e-6, 8e9, 0.05};
  node.pairs = {{0, 1}};
  r.classes.push_back(node);
  // 2 hosts x 1 node x 2 ranks.
  CostModel m = build_cost_model({0, 0, 1, 1}, {0, 0, 1, 1}, r);
  REQUIRE(m.nranks() == 4);
  CHECK(m.pair_level(0, 1) == 1);
  CHECK(m.pair_level(0, 2) == 3);
  CHECK(m.self_on_ingress());
  // Off-node: 2 ranks x 1 GB/s through node0's uplink; rank 0 sends 1 GB to rank 2 and rank 1 to 3.
  std::vector<double> D(16, 0.0);
  D[0 * 4 + 2] = 1e9;
  D[1 * 4 + 3] = 1e9;
  auto p = m.predict(D);
  CHECK(p.bandwidth_seconds == Catch::Approx(1.0));  // 2 GB over a 2 GB/s uplink
  // Inside the node only the 4 GB/s ports count.
  std::vector<double> E(16, 0.0);
  E[0 * 4 + 1] = 1e9;
  CHECK(m.predict(E).bandwidth_seconds == Catch::Approx(0.25));
  CHECK(m.probe_classes().front().name == "node");
  CHECK_THROWS_AS(build_cost_model({0, 1}, {0}, r), tamoe::Error);
}
