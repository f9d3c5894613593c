// The entropic planner: marginals and bounds, a brute-force reference at P = 2, the scaling
// structure of the unbounded solution, the trade-off direction and the small-eps limit.
#include <cmath>
#include <random>

#include "catch_compat.h"
#include "planner/clp_lp.h"
#include "planner/planner.h"
#include "planner/sinkhorn.h"
#include "planner_test_util.h"
#include "topology/synthetic.h"

using namespace tamoe;
using namespace tamoe::plan;

namespace {
double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t k = 0; k < a.size(); ++k) s += a[k] * b[k];
  return s;
}
// min <C, X> over doubly stochastic X with X <= r, as a plain LP through CLP.
double transport_optimum(const std::vector<double>& c, int P, double r) {
  LinearProgram lp;
  for (int k = 0; k < P * P; ++k) lp.add_col(c[k], 0, r);
  for (int i = 0; i < P; ++i) {
    int a = lp.add_row(1, 1), b = lp.add_row(1, 1);
    for (int j = 0; j < P; ++j) {
      lp.add(a, i * P + j, 1);
      lp.add(b, j * P + i, 1);
    }
  }
  return solve_lp(lp, "transport LP").objective;
}
}  // namespace

// Convergence is checked for eps >= 0.1 on costs in [0, 1]: below that the kernel's contrast
// e^{-1/eps} makes Sinkhorn's linear rate crawl (the planner then stops at max_iter and polishes
// the marginals; docs/planner.md).
TEST_CASE("sinkhorn: rows and columns sum to 1 within 1e-9 and bounds hold",
          "[planner][sinkhorn]") {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> uni(0, 1);
  for (int P : {2, 3, 8, 33}) {
    std::vector<double> c(size_t(P) * P);
    for (double& e : c) e = uni(rng);
    for (double eps : {0.1, 0.3, 1.0, 10.0})
      for (double rho : {1.0, 1.1, 2.0, double(P)}) {
        SinkhornOptions o;
        o.eps = eps;
        o.rho = rho;
        SinkhornResult r = bounded_sinkhorn(c, P, o);
        INFO("P " << P << " eps " << eps << " rho " << rho << " iterations " << r.iterations);
        CHECK(r.converged);
        CHECK(test::max_marginal_error(r.x, P) < 1e-9);
        CHECK(test::max_bound_violation(r.x, P, rho) < 1e-15);
      }
  }
}

TEST_CASE("sinkhorn: P = 2 matches a brute-force minimization", "[planner][sinkhorn]") {
  // X = [[a, 1-a], [1-a, a]]; f(a) = <C, X> - eps H(X) is convex on [1-r, r]: golden section.
  const std::vector<double> c = {0.1, 1.0, 0.7, 0.3};
  for (double eps : {0.1, 0.3, 2.0})
    for (double rho : {1.2, 1.6, 2.0}) {
      const double r = std::min(1.0, rho / 2);
      auto f = [&](double a) {
        auto h = [](double v) { return v > 0 ? v * std::log(v) : 0.0; };
        return a * (c[0] + c[3]) + (1 - a) * (c[1] + c[2]) + eps * 2 * (h(a) + h(1 - a));
      };
      double lo = 1 - r, hi = r;
      const double g = (std::sqrt(5.0) - 1) / 2;
      for (int it = 0; it < 200; ++it) {
        double m1 = hi - g * (hi - lo), m2 = lo + g * (hi - lo);
        (f(m1) < f(m2) ? hi : lo) = f(m1) < f(m2) ? m2 : m1;
      }
      SinkhornOptions o;
      o.eps = eps;
      o.rho = rho;
      SinkhornResult res = bounded_sinkhorn(c, 2, o);
      INFO("eps " << eps << " rho " << rho);
      CHECK(res.x[0] == Catch::Approx(0.5 * (lo + hi)).margin(1e-7));
      CHECK(res.x[3] == Catch::Approx(0.5 * (lo + hi)).margin(1e-7));
    }
}

TEST_CASE("sinkhorn: without an active bound X = diag(u) exp(-C/eps) diag(v)",
          "[planner][sinkhorn]") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> uni(0, 1);
  const int P = 6;
  std::vector<double> c(P * P);
  for (double& e : c) e = uni(rng);
  for (double eps : {0.2, 1.0}) {
    SinkhornOptions o;
    o.eps = eps;
    o.rho = P;  // bound 1: never active
    SinkhornResult r = bounded_sinkhorn(c, P, o);
    // L_ij = log X_ij + C_ij / eps must be f_i + g_j: all 2x2 cross differences vanish.
    auto L = [&](int i, int j) { return std::log(r.x[i * P + j]) + c[i * P + j] / eps; };
    for (int i = 1; i < P; ++i)
      for (int j = 1; j < P; ++j) CHECK(std::abs(L(i, j) - L(i, 0) - L(0, j) + L(0, 0)) < 1e-8);
  }
}

TEST_CASE("sinkhorn: eps trades cost against distance from uniform", "[planner][sinkhorn]") {
  topo::CostModel cm = topo::make_synthetic(topo::parse_synthetic_cluster("nodes=3,rpn=4"));
  const int P = cm.nranks();
  MoeShape s;
  std::vector<double> c = route_cost_matrix(cm, s.volume_bytes());
  double prev_cost = -1, prev_kl = 1e300;
  for (double eps : {10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01}) {
    SinkhornOptions o;
    o.eps = eps;
    o.rho = 3;
    SinkhornResult r = bounded_sinkhorn(c, P, o);
    double cost = dot(c, r.x), kl = kl_from_uniform(r.x, P);
    INFO("eps " << eps << " cost " << cost << " kl " << kl);
    if (prev_cost >= 0) {
      CHECK(cost <= prev_cost + 1e-12);
      CHECK(kl >= prev_kl - 1e-12);
    }
    if (eps == 10.0) CHECK(kl < 1e-2);
    prev_cost = cost;
    prev_kl = kl;
    if (have_clp()) {
      // Entropic gap: 0 <= <C,X_eps> - OT <= eps (H(X_eps) - H(X_OT)) <= eps P log P.
      double ot = transport_optimum(c, P, 3.0 / P);
      CHECK(cost >= ot - 1e-9);
      CHECK(cost - ot <= eps * P * std::log(P) + 1e-9);
    }
  }
}

TEST_CASE("sinkhorn: the plan meets a KL budget and the curve spans uniform to the LP",
          "[planner][sinkhorn]") {
  topo::CostModel cm = topo::make_synthetic(topo::parse_synthetic_cluster("nodes=2,rpn=4"));
  MoeShape s;
  PlanOptions o;
  o.mode = "sinkhorn";
  o.rho = 4;
  o.kl_budget = 0.2;
  Plan p = make_plan(cm, s, o);
  CHECK(p.metrics.kl_from_uniform <= 0.2 + 1e-9);
  CHECK(p.metrics.kl_from_uniform > 0.15);  // the budget is used, not wasted
  CHECK(p.metrics.speedup > 1);
  std::vector<TradeoffPoint> curve = tradeoff_curve(cm, s, 4, 8);
  REQUIRE(curve.size() >= 9);
  CHECK(curve.front().label == "uniform");
  for (const auto& pt : curve) CHECK(pt.seconds <= curve.front().seconds * (1 + 1e-9));
  if (have_clp()) {
    CHECK(curve.back().label == "lp");
    for (const auto& pt : curve) CHECK(pt.seconds >= curve.back().seconds * (1 - 1e-6) - 1e-7);
  }
}
