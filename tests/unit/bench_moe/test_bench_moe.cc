// tamoe-bench-moe's closed-form plan fallback, plan checks, cost-model beta and the bias warm-up
// that makes the gate realize a plan.
#include <algorithm>
#include <cmath>
#include <vector>

#include "bench/moe_layer/moe_gate.h"
#include "bench/moe_layer/moe_plan.h"
#include "catch_compat.h"
#include "routing/losses.h"
#include "routing/stats.h"
#include "runtime/error.h"
#include "topology/cost_model.h"
#ifdef TAMOE_BENCH_HAVE_PLANNER
#include "planner/symmetric.h"
#endif

using namespace tamoe;
using namespace tamoe::bench::moe;
using Catch::Approx;

namespace {

std::vector<int> nodes_of(int n, int m) {
  std::vector<int> v;
  for (int i = 0; i < n * m; ++i) v.push_back(i / m);
  return v;
}

// n nodes x m ranks: rank <-> node fabric at intra_gbps per rank, node <-> switch at nic_gbps.
topo::CostModel two_level_model(int n, int m, double intra_gbps, double nic_gbps) {
  topo::CostModel cm(n * m);
  int sw = cm.add_vertex("switch", "switch");
  for (int a = 0; a < n; ++a) {
    int node = cm.add_vertex(str("node", a), "fabric");
    cm.connect(node, sw, nic_gbps, nic_gbps, 0);
    for (int l = 0; l < m; ++l) {
      cm.connect(a * m + l, node, intra_gbps, intra_gbps, 0);
      cm.set_location(a * m + l, a);
    }
  }
  cm.validate();
  return cm;
}

}  // namespace

TEST_CASE("closed-form fallback: 2x2 at rho 1.5 keeps 3/4 of the copies on the node",
          "[bench_moe]") {
  TwoLevelLadder l = fallback_two_level_plan(2, 2, 0.01, 1.5);
  CHECK(l.self == Approx(0.375));
  CHECK(l.node == Approx(0.375));
  CHECK(l.remote == Approx(0.125));
  CHECK(l.rho_star == Approx(4.0 / (2 + 0.01)));
  auto x = ladder_to_dense(l, nodes_of(2, 2));
  CHECK_NOTHROW(check_plan(x, 4, 1.5, "2x2"));
  CHECK(x[0 * 4 + 1] == Approx(0.375));
  CHECK(x[1 * 4 + 3] == Approx(0.125));
}

TEST_CASE("closed-form fallback: rho 1 and one node give uniform, every plan is feasible",
          "[bench_moe]") {
  TwoLevelLadder u = fallback_two_level_plan(4, 2, 0.1, 1.0);
  CHECK(u.self == Approx(0.125));
  CHECK(u.node == Approx(0.125));
  CHECK(u.remote == Approx(0.125));
  TwoLevelLadder one = fallback_two_level_plan(1, 4, 0.1, 3.0);
  CHECK(one.self == Approx(0.25));
  CHECK(one.node == Approx(0.25));
  for (int n : {2, 3, 4, 8})
    for (int m : {1, 2, 4})
      for (double beta : {0.001, 0.05, 0.5, 2.0})
        for (double rho : {1.0, 1.2, 1.5, 2.0, 3.0}) {
          INFO(n << " x " << m << " beta " << beta << " rho " << rho);
          auto l = fallback_two_level_plan(n, m, beta, rho);
          CHECK_NOTHROW(check_plan(ladder_to_dense(l, nodes_of(n, m)), n * m, rho, "grid"));
          // with slower inter-node links, remote traffic never exceeds uniform's
          if (beta < 1) CHECK(l.remote <= 1.0 / (n * m) + 1e-12);
        }
}

TEST_CASE("closed-form fallback: bad arguments name themselves", "[bench_moe]") {
  CHECK_THROWS_WITH(fallback_two_level_plan(2, 2, 0.1, 0.5), Catch::Contains("rho >= 1"));
  CHECK_THROWS_WITH(fallback_two_level_plan(2, 2, 0, 1.5), Catch::Contains("beta > 0"));
  CHECK_THROWS_WITH(fallback_two_level_plan(0, 2, 0.1, 1.5), Catch::Contains("n, m >= 1"));
}

#ifdef TAMOE_BENCH_HAVE_PLANNER
TEST_CASE("closed-form fallback equals the planner's two-level closed form", "[bench_moe]") {
  for (int n : {2, 4, 16})
    for (int m : {2, 4, 8})
      for (double beta : {0.01, 0.2, 1.0})
        for (double rho : {1.0, 1.5, 2.5, 6.0}) {
          INFO(n << " x " << m << " beta " << beta << " rho " << rho);
          auto mine = fallback_two_level_plan(n, m, beta, rho);
          auto ref = plan::two_level_closed_form(n, m, 1.0, beta, 1e6, rho);
          // (the fallback additionally clamps remote entries that would exceed the bound)
          if (ref.remote > std::min(1.0, rho / (n * m))) continue;
          CHECK(mine.self == Approx(ref.self).margin(1e-12));
          CHECK(mine.node == Approx(ref.node).margin(1e-12));
          CHECK(mine.remote == Approx(ref.remote).margin(1e-12));
        }
}
#endif

TEST_CASE("check_plan names the broken row, column or entry", "[bench_moe]") {
  auto x = ladder_to_dense(fallback_two_level_plan(2, 2, 0.01, 1.5), nodes_of(2, 2));
  auto bad = x;
  bad[2] += 0.01;
  CHECK_THROWS_WITH(check_plan(bad, 4, 1.5, "p"), Catch::Contains("row 0"));
  // a valid doubly stochastic matrix above the bound
  auto over = ladder_to_dense(fallback_two_level_plan(2, 2, 0.01, 2.0), nodes_of(2, 2));
  CHECK_THROWS_WITH(check_plan(over, 4, 1.5, "p"), Catch::Contains("X[0][0]"));
  CHECK_THROWS_WITH(check_plan(std::vector<double>(15, 0.25), 4, 1.5, "p"),
                    Catch::Contains("4 x 4 entries"));
}

TEST_CASE("model_beta is B_inter per rank over B_intra on a two-level graph", "[bench_moe]") {
  // 2x2: a 1 GB/s NIC shared by 2 ranks = 0.5 GB/s per rank against 10 GB/s ports
  CHECK(model_beta(two_level_model(2, 2, 10, 1), nodes_of(2, 2), 2, 2, 1 << 20) ==
        Approx(0.05).epsilon(1e-9));
  // 4x2: all remote, every rank's whole volume crosses its NIC (2 V per node at 1 GB/s)
  CHECK(model_beta(two_level_model(4, 2, 10, 1), nodes_of(4, 2), 4, 2, 1 << 20) ==
        Approx(0.05).epsilon(1e-9));
  // The fallback plan at that beta on the bench's default bound
  TaPlan p = make_ta_plan(two_level_model(2, 2, 10, 1), nodes_of(2, 2), 2, 2, 2, 1024, 2, 256, 1.25,
                          1.5, "closed-form");
  CHECK(p.source == "closed-form fallback");
  CHECK(p.x[0 * 4 + 2] == Approx(0.125));
  CHECK_THROWS_WITH(make_ta_plan(two_level_model(2, 2, 10, 1), nodes_of(2, 2), 2, 2, 2, 1024, 2,
                                 256, 1.25, 1.5, "lp-please"),
                    Catch::Contains("auto, planner or closed-form"));
}

TEST_CASE("bias warm-up makes the gate's top-k realize a TA plan", "[bench_moe]") {
  const int n = 2, m = 2, E = 2;
  route::ExpertLayout layout = route::ExpertLayout::regular(n * m, E, m);
  auto x = ladder_to_dense(fallback_two_level_plan(n, m, 0.01, 1.5), nodes_of(n, m));
  std::vector<double> row(x.begin(), x.begin() + n * m);  // rank 0
  Eigen::VectorXd target = route::target_from_plan(row, layout);
  FeatureGate gate(64, layout.num_experts(), 7);
  route::GateOptions opt;
  opt.k = 2;
  BiasWarmup w = warm_up_bias(gate, target, layout, opt, 1024, 300, 4, 5.0, 99);
  INFO("KL " << w.kl_before << " -> " << w.kl_after);
  CHECK(w.kl_before > 0.1);
  CHECK(w.kl_after < 0.01);
  // a fresh batch (not seen in the warm-up) lands near the plan: cross-node share ~ 0.25
  auto fresh = gate.features(1024, 12345);
  auto r = route::route(gate.logits(fresh), w.bias, layout, [&] {
    route::GateOptions o = opt;
    o.overflow = route::Overflow::dropless;
    return o;
  }());
  auto st = route::routing_stats(r, layout, 0, target);
  CHECK(st.share_cross_node == Approx(0.25).margin(0.03));
  CHECK(st.share_on_rank == Approx(0.375).margin(0.03));
}
