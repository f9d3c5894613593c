// The exact LP planner: marginals and bounds, the two-level closed form, and agreement with an
// independently built dual LP and with the cost model on random small graphs.
#include <cmath>
#include <random>

#include "catch_compat.h"
#include "planner/clp_lp.h"
#include "planner/lp_planner.h"
#include "planner/planner.h"
#include "planner/sinkhorn.h"
#include "planner/symmetric.h"
#include "planner_test_util.h"
#include "topology/synthetic.h"

using namespace tamoe;
using namespace tamoe::plan;

namespace {
constexpr double kV = 64e6;  // bytes per rank

// A random connected graph: P ranks, S switches in a bidirectional ring, each rank on one or two
// switches with random port speeds, some direct rank links, some one-way shortcuts.
topo::CostModel random_graph(std::mt19937& rng, int P, int S) {
  std::uniform_real_distribution<double> bw(5, 100);
  std::uniform_int_distribution<int> pick_sw(0, S - 1), pick_rank(0, P - 1);
  topo::CostModel cm(P);
  std::vector<int> sw;
  for (int s = 0; s < S; ++s) sw.push_back(cm.add_vertex("sw" + std::to_string(s), "switch"));
  for (int s = 0; s < S && S > 1; ++s) cm.connect(sw[s], sw[(s + 1) % S], bw(rng), bw(rng), 1);
  for (int r = 0; r < P; ++r) {
    cm.connect(r, sw[pick_sw(rng)], bw(rng), bw(rng), 1);
    if (rng() % 3 == 0) cm.connect(r, sw[pick_sw(rng)], bw(rng), bw(rng), 1);
    cm.set_location(r, r / 2, 0);
  }
  for (int k = 0; k < P / 2; ++k) {
    int a = pick_rank(rng), b = pick_rank(rng);
    if (a != b) cm.add_link(a, b, bw(rng), 1);
  }
  if (S > 2) cm.add_link(sw[0], sw[S / 2], bw(rng), 1);
  cm.validate("random graph");
  return cm;
}

// The dual of the epigraph LP, written out from the routes with no merging of links:
//   max sum_i u_i + sum_j v_j - r sum_ij s_ij
//   s.t. sum_l w_l = 1,  u_i + v_j - s_ij - sum_{l on route(i,j)} w_l / B_l <= 0,  w, s >= 0.
// Its optimum is the primal bandwidth time per unit volume (seconds per GB) by strong duality.
// Any feasible dual point bounds the primal from below (weak duality), so boxing u and v (whose
// unboxed optimum face contains rays of huge, cancelling values that cost CLP its accuracy)
// keeps the check sound: equal values prove both optimal.
double dual_optimum(const topo::CostModel& cm, double rho) {
  const int P = cm.nranks();
  const double r = std::min(1.0, rho / P);
  double max_route = 0;
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) {
      double c = 0;
      if (i != j)
        for (int l : cm.route(i, j)) c += 1 / cm.link(l).bw_gbps;
      max_route = std::max(max_route, c);
    }
  const double box = 10 * P * max_route;
  LinearProgram lp;
  std::vector<int> u(P), v(P), w(cm.nlinks());
  for (int i = 0; i < P; ++i) u[i] = lp.add_col(-1, -box, box);
  for (int j = 0; j < P; ++j) v[j] = lp.add_col(-1, -box, box);
  for (int l = 0; l < cm.nlinks(); ++l) w[l] = lp.add_col(0, 0, 1e30);
  int norm = lp.add_row(1, 1);
  for (int l = 0; l < cm.nlinks(); ++l) lp.add(norm, w[l], 1);
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) {
      int s = lp.add_col(r, 0, 1e30);
      int row = lp.add_row(-1e30, 0);
      lp.add(row, u[i], 1);
      lp.add(row, v[j], 1);
      lp.add(row, s, -1);
      if (i != j)
        for (int l : cm.route(i, j)) lp.add(row, w[l], -1 / cm.link(l).bw_gbps);
    }
  return -solve_lp(lp, "dual LP").objective;
}
}  // namespace

TEST_CASE("lp: rows and columns sum to 1 within 1e-9 and bounds hold", "[planner][lp]") {
  if (!have_clp()) {
    WARN("built without CLP: skipped");
    return;
  }
  for (double rho : {1.0, 1.2, 2.0, 4.0, 16.0}) {
    for (const char* spec :
         {"nodes=2,rpn=8", "nodes=4,rpn=2,shared_nic=1", "nodes=4,rpn=2,leaf=2,oversub=2"}) {
      topo::CostModel cm = topo::make_synthetic(topo::parse_synthetic_cluster(spec));
      LpPlanResult r = solve_dispatch_lp(cm, kV, rho);
      INFO(spec << " rho " << rho);
      CHECK(test::max_marginal_error(r.x, cm.nranks()) < 1e-9);
      CHECK(test::max_bound_violation(r.x, cm.nranks(), rho) < 1e-12);
      // The LP's t is the bandwidth part of the cost model's prediction for that X.
      topo::Prediction pr = cm.predict(test::scaled(r.x, kV));
      CHECK(pr.bandwidth_seconds == Catch::Approx(r.bw_seconds).epsilon(1e-7));
    }
  }
}

TEST_CASE("lp: optimum equals the two-level closed form on symmetric clusters", "[planner][lp]") {
  if (!have_clp()) {
    WARN("built without CLP: skipped");
    return;
  }
  // Compared: X_ii; each rank's total to its node peers and its total to remote ranks; the
  // bandwidth time t. Individual node-peer and remote entries are not unique optima of the full
  // LP (any redistribution with the same row and column totals costs the same), so they are
  // compared per entry only for the ladder solver, in test_symmetric.cc. At rho = rho* the LP
  // optimum is the design's (x*, y*) itself: X_ii = x*, node total (m-1) x*, remote total
  // (n-1) m y*.
  struct Case {
    int n, m;
    bool shared;
  };
  for (Case cs : {Case{2, 4, false}, Case{3, 4, false}, Case{2, 8, false}, Case{4, 3, true}}) {
    topo::SyntheticCluster c;
    c.nodes = cs.n;
    c.ranks_per_node = cs.m;
    c.nic_per_rank = !cs.shared;
    topo::CostModel cm = topo::make_synthetic(c);
    const double inter = cs.shared ? c.nic_bw_gbps / cs.m : c.nic_bw_gbps;
    const double rho_star =
        two_level_closed_form(cs.n, cs.m, c.intra_bw_gbps, inter, kV, 1).rho_star;
    for (double rho : {1.0, 1.3, rho_star, 0.5 * (rho_star + cs.m), 2.0 * rho_star, 1e9}) {
      rho = std::max(rho, 1.0);
      TwoLevelClosedForm f = two_level_closed_form(cs.n, cs.m, c.intra_bw_gbps, inter, kV, rho);
      LpPlanResult r = solve_dispatch_lp(cm, kV, rho);
      INFO(cs.n << "x" << cs.m << (cs.shared ? " shared nic" : "") << " rho " << rho);
      CHECK(r.bw_seconds == Catch::Approx(f.bw_seconds).epsilon(1e-7).margin(1e-15));
      const int P = cs.n * cs.m;
      for (int i = 0; i < P; ++i) {
        double node = 0, remote = 0;
        for (int j = 0; j < P; ++j) {
          if (j == i) continue;
          (cm.node_of(j) == cm.node_of(i) ? node : remote) += r.x[size_t(i) * P + j];
        }
        CHECK(r.x[size_t(i) * P + i] == Catch::Approx(f.self).margin(1e-9));
        CHECK(node == Catch::Approx((cs.m - 1) * f.node).margin(1e-8));
        CHECK(remote == Catch::Approx((cs.n - 1) * cs.m * f.remote).margin(1e-8));
      }
      if (rho == rho_star) {
        CHECK(f.self == Catch::Approx(f.x_star).epsilon(1e-12));
        CHECK(f.node == Catch::Approx(f.x_star).epsilon(1e-12));
        CHECK(f.remote == Catch::Approx(f.y_star).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("lp: agrees with the dual LP and with the cost model on random graphs", "[planner][lp]") {
  if (!have_clp()) {
    WARN("built without CLP: skipped");
    return;
  }
  std::mt19937 rng(20240611);
  for (int trial = 0; trial < 24; ++trial) {
    const int P = 2 + trial % 5, S = 1 + trial % 3;
    topo::CostModel cm = random_graph(rng, P, S);
    for (double rho : {1.0, 1.5, double(P)}) {
      LpPlanResult r = solve_dispatch_lp(cm, kV, rho);
      INFO("trial " << trial << " P " << P << " rho " << rho);
      CHECK(test::max_marginal_error(r.x, P) < 1e-9);
      CHECK(test::max_bound_violation(r.x, P, rho) < 1e-12);
      // Strong duality with a dual built link by link from the routes.
      double dual = dual_optimum(cm, rho);  // seconds per GB
      CHECK(r.bw_seconds == Catch::Approx(dual * kV / 1e9).epsilon(1e-7).margin(1e-12));
      // The cost model agrees on the value of the plan.
      double model_bw = cm.predict(test::scaled(r.x, kV)).bandwidth_seconds;
      CHECK(model_bw == Catch::Approx(r.bw_seconds).epsilon(1e-7).margin(1e-15));
      // No random feasible plan (bounded Sinkhorn of a random cost) beats it.
      std::uniform_real_distribution<double> uni(0, 1);
      for (int k = 0; k < 20; ++k) {
        std::vector<double> c(size_t(P) * P);
        for (double& e : c) e = uni(rng);
        SinkhornOptions so;
        so.eps = 0.05 + uni(rng);
        so.rho = rho;
        std::vector<double> x = bounded_sinkhorn(c, P, so).x;
        double t = cm.predict(test::scaled(x, kV)).bandwidth_seconds;
        CHECK(t >= r.bw_seconds * (1 - 1e-7));
      }
    }
  }
}

TEST_CASE("lp: planning 128 ranks takes under a second", "[planner][lp]") {
  if (!have_clp()) {
    WARN("built without CLP: skipped");
    return;
  }
  topo::CostModel cm = topo::make_synthetic(topo::parse_synthetic_cluster("nodes=16,rpn=8"));
  LpPlanResult r = solve_dispatch_lp(cm, kV, 2);
  INFO("LP build + solve at 128 ranks: " << r.seconds << " s, " << r.iterations << " iterations");
  CHECK(test::max_marginal_error(r.x, 128) < 1e-9);
  // Generous for a shared 2-core machine under sanitizers; bench/planner reports the real time.
  CHECK(r.seconds < 10);
  WARN("LP at 128 ranks: " << r.seconds << " s");
}
