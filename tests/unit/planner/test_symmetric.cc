// The symmetry-reduced planner: its closed-form counts against the cost model, its optimum
// against the full LP and against the two-level closed form, and its speed at 16,384 ranks.
#include <chrono>
#include <cmath>
#include <random>

#include "catch_compat.h"
#include "planner/clp_lp.h"
#include "planner/lp_planner.h"
#include "planner/planner.h"
#include "planner/symmetric.h"
#include "planner_test_util.h"
#include "runtime/error.h"
#include "topology/synthetic.h"

using namespace tamoe;
using namespace tamoe::plan;

namespace {
constexpr double kV = 32e6;
const char* kShapes[] = {"nodes=2,rpn=4",
                         "nodes=3,rpn=4,shared_nic=1",
                         "nodes=4,rpn=2,leaf=2,oversub=2",
                         "nodes=6,rpn=2,leaf=3,oversub=3,shared_nic=1",
                         "nodes=4,rpn=1,leaf=2,oversub=2",
                         "nodes=1,rpn=6"};

std::vector<double> dense_ladder(const topo::CostModel& cm, const std::array<double, 4>& x) {
  const int P = cm.nranks();
  std::vector<double> d(size_t(P) * P);
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) d[size_t(i) * P + j] = x[cm.pair_level(i, j)];
  return d;
}
}  // namespace

TEST_CASE("sym: closed-form counts reproduce the cost model's prediction", "[planner][sym]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uni(0, 1);
  for (const char* spec : kShapes) {
    topo::SyntheticCluster c = topo::parse_synthetic_cluster(spec);
    topo::CostModel cm = topo::make_synthetic(c);
    ReducedProblem analytic = reduce(c), counted = reduce(cm, kV);
    CHECK(analytic.count == counted.count);
    for (int k = 0; k < 10; ++k) {
      std::array<double, 4> x = {uni(rng), uni(rng), k % 3 ? uni(rng) : 0.0, uni(rng)};
      topo::Prediction pr = cm.predict(test::scaled(dense_ladder(cm, x), kV));
      LadderTimes a = ladder_times(analytic, x, kV), b = ladder_times(counted, x, kV);
      INFO(spec << " ladder " << x[0] << " " << x[1] << " " << x[2] << " " << x[3]);
      CHECK(a.bw_seconds == Catch::Approx(pr.bandwidth_seconds).epsilon(1e-12));
      CHECK(b.bw_seconds == Catch::Approx(pr.bandwidth_seconds).epsilon(1e-12));
      CHECK(a.lat_seconds == Catch::Approx(pr.latency_seconds).epsilon(1e-12));
      CHECK(b.lat_seconds == Catch::Approx(pr.latency_seconds).epsilon(1e-12));
    }
  }
}

TEST_CASE("sym: equals the full LP on small regular clusters", "[planner][sym]") {
  if (!have_clp()) {
    WARN("built without CLP: skipped");
    return;
  }
  for (const char* spec : kShapes) {
    topo::SyntheticCluster c = topo::parse_synthetic_cluster(spec);
    topo::CostModel cm = topo::make_synthetic(c);
    for (double rho : {1.0, 1.2, 2.0, 4.0, 100.0}) {
      LpPlanResult full = solve_dispatch_lp(cm, kV, rho);
      ReducedSolution a = solve_reduced(reduce(c), kV, rho);
      ReducedSolution b = solve_reduced(reduce(cm, kV), kV, rho);
      INFO(spec << " rho " << rho);
      CHECK(a.bw_seconds == Catch::Approx(full.bw_seconds).epsilon(1e-7).margin(1e-15));
      CHECK(b.bw_seconds == Catch::Approx(full.bw_seconds).epsilon(1e-7).margin(1e-15));
      // The ladder is a feasible point of the full LP with that value.
      std::vector<double> d = dense_ladder(cm, a.x);
      CHECK(test::max_marginal_error(d, cm.nranks()) < 1e-9);
      CHECK(test::max_bound_violation(d, cm.nranks(), rho) < 1e-12);
      CHECK(cm.predict(test::scaled(d, kV)).bandwidth_seconds ==
            Catch::Approx(full.bw_seconds).epsilon(1e-7).margin(1e-15));
    }
  }
}

TEST_CASE("sym: 16,384 ranks match the two-level closed form entry by entry in under 1 s",
          "[planner][sym]") {
  if (!have_clp()) {
    WARN("built without CLP: skipped");
    return;
  }
  // Compared per entry: X_ii = self, X_ij (same node) = node, X_ij (remote) = remote, and the
  // bandwidth time, from two_level_closed_form (self free, X_ii its own variable; see
  // symmetric.h). At rho = rho* these are the design's x* and y*.
  topo::SyntheticCluster c = topo::parse_synthetic_cluster("nodes=2048,rpn=8,intra=450,nic=50");
  MoeShape s;
  const double V = s.volume_bytes();
  const double rho_star = two_level_closed_form(2048, 8, 450, 50, V, 1).rho_star;
  for (double rho : {1.0, 1.2, 2.0, 4.0, rho_star, 3 * rho_star, 20000.0}) {
    PlanOptions o;
    o.mode = "sym";
    o.rho = rho;
    auto t0 = std::chrono::steady_clock::now();
    Plan p = make_plan(c, s, o);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    TwoLevelClosedForm f = two_level_closed_form(2048, 8, 450, 50, V, rho);
    INFO("rho " << rho << " (rho* " << rho_star << "), " << secs << " s");
    REQUIRE(p.nranks == 16384);
    REQUIRE(p.is_ladder);
    CHECK(secs < 1.0);
    CHECK(p.at(5, 5) == Catch::Approx(f.self).epsilon(1e-9).margin(1e-15));
    CHECK(p.at(5, 6) == Catch::Approx(f.node).epsilon(1e-9).margin(1e-15));
    CHECK(p.at(5, 16000) == Catch::Approx(f.remote).epsilon(1e-9).margin(1e-15));
    CHECK(p.metrics.plan_bw_seconds == Catch::Approx(f.bw_seconds).epsilon(1e-9));
    if (rho == rho_star) {
      CHECK(p.at(0, 1) == Catch::Approx(f.x_star).epsilon(1e-9));
      CHECK(p.at(0, 9) == Catch::Approx(f.y_star).epsilon(1e-9));
    }
    // Rows sum to 1 (counts x values) and entries stay under rho/P.
    double row = p.ladder_x[0] + 7 * p.ladder_x[1] + (16384 - 8) * p.ladder_x[2];
    CHECK(std::abs(row - 1) < 1e-9);
    for (double v : p.ladder_x) CHECK(v <= std::min(1.0, rho / 16384) + 1e-15);
  }
}

TEST_CASE("sym: an irregular hierarchy is refused, naming the rank", "[planner][sym]") {
  // Node 0 has ranks 0 and 1, node 1 only rank 2.
  topo::CostModel cm(3);
  int sw = cm.add_vertex("switch", "switch");
  for (int r = 0; r < 3; ++r) cm.connect(r, sw, 10, 10, 1);
  cm.set_location(0, 0);
  cm.set_location(1, 0);
  cm.set_location(2, 1);
  try {
    reduce(cm, kV);
    FAIL("no error");
  } catch (const Error& e) {
    std::string m = e.what();
    CHECK(m.find("rank 2") != std::string::npos);
    CHECK(m.find("regular hierarchy") != std::string::npos);
  }
  topo::SyntheticCluster c = topo::parse_synthetic_cluster("nodes=5,rpn=2,leaf=2");
  try {
    reduce(c);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("divisible") != std::string::npos);
  }
}
