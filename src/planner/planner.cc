#include "planner/planner.h"

#include <chrono>
#include <cmath>

#include "planner/clp_lp.h"
#include "planner/lp_planner.h"
#include "planner/sinkhorn.h"
#include "planner/symmetric.h"
#include "runtime/error.h"
#include "runtime/log.h"

namespace tamoe::plan {

namespace {
constexpr int kAutoLpMaxRanks = 256;
constexpr int kDenseMaxRanks = 2048;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Plan base_plan(int nranks, const MoeShape& shape, const PlanOptions& opt) {
  Plan p;
  p.nranks = nranks;
  p.shape = shape;
  p.rho = opt.rho;
  p.kl_budget = opt.kl_budget;
  return p;
}

struct SinkhornPick {
  std::vector<double> x;
  double eps = 0;
  int iterations = 0;
};

SinkhornPick run_sinkhorn(const std::vector<double>& cost, int P, double eps, double rho,
                          int max_iter) {
  SinkhornOptions so;
  so.eps = eps;
  so.rho = rho;
  so.max_iter = max_iter;
  SinkhornResult r = bounded_sinkhorn(cost, P, so);
  if (!r.converged) {
    TAMOE_LOGF(warn, "plan") << "Sinkhorn at eps " << eps << " stopped after " << r.iterations
                             << " sweeps with marginal error " << r.marginal_error << "; polishing";
  }
  polish_marginals(r.x, P, std::min(1.0, rho / P));
  return {std::move(r.x), eps, r.iterations};
}

double predicted_seconds(const topo::CostModel& cm, const std::vector<double>& x, double V) {
  std::vector<double> d(x.size());
  for (size_t k = 0; k < x.size(); ++k) d[k] = V * x[k];
  return cm.predict_seconds(d);
}

SinkhornPick plan_sinkhorn(const topo::CostModel& cm, const MoeShape& shape,
                           const PlanOptions& opt) {
  const int P = cm.nranks();
  const double V = shape.volume_bytes();
  std::vector<double> cost = route_cost_matrix(cm, V);
  if (opt.eps > 0) return run_sinkhorn(cost, P, opt.eps, opt.rho, opt.sinkhorn_max_iter);
  if (opt.kl_budget >= 0) {
    // KL from uniform falls as eps grows: bisect log(eps) for the smallest eps within budget.
    double lo = std::log(1e-3), hi = std::log(1e3);
    SinkhornPick best = run_sinkhorn(cost, P, std::exp(lo), opt.rho, opt.sinkhorn_max_iter);
    if (kl_from_uniform(best.x, P) <= opt.kl_budget) return best;
    best = run_sinkhorn(cost, P, std::exp(hi), opt.rho, opt.sinkhorn_max_iter);
    for (int it = 0; it < 30; ++it) {
      double mid = 0.5 * (lo + hi);
      SinkhornPick s = run_sinkhorn(cost, P, std::exp(mid), opt.rho, opt.sinkhorn_max_iter);
      if (kl_from_uniform(s.x, P) <= opt.kl_budget) {
        hi = mid;
        best = std::move(s);
      } else {
        lo = mid;
      }
    }
    return best;
  }
  // No eps and no budget: the eps of a log sweep with the lowest predicted time.
  SinkhornPick best;
  double best_t = 1e300;
  for (int k = 0; k < 13; ++k) {
    double eps = std::pow(10.0, 1.0 - k / 4.0);  // 10 .. 0.001
    SinkhornPick s = run_sinkhorn(cost, P, eps, opt.rho, opt.sinkhorn_max_iter);
    double t = predicted_seconds(cm, s.x, V);
    if (t < best_t) {
      best_t = t;
      best = std::move(s);
    }
  }
  return best;
}
}  // namespace

void validate_options(const PlanOptions& o, const std::string& where) {
  check_rho(o.rho, where);
  if (o.mode != "auto") parse_mode(o.mode, where + " mode");
  if (!std::isfinite(o.kl_budget))
    fail(Status::invalid_argument, where + " kl_budget", "a finite KL budget (negative: off)",
         str(o.kl_budget));
  if (!std::isfinite(o.eps) || o.eps < 0)
    fail(Status::invalid_argument, where + " eps", "a finite eps >= 0 (0: sweep)", str(o.eps));
  if (o.sinkhorn_max_iter < 1)
    fail(Status::invalid_argument, where + " sinkhorn_max_iter", "at least 1",
         str(o.sinkhorn_max_iter));
}

void predict_metrics(Plan& p, const topo::CostModel& cm) {
  const double V = p.shape.volume_bytes();
  std::vector<double> x = p.dense();
  for (double& v : x) v *= V;
  topo::Prediction pr = cm.predict(x);
  std::vector<double> u(x.size(), V / p.nranks);
  topo::Prediction pu = cm.predict(u);
  Metrics& m = p.metrics;
  m.plan_seconds = pr.seconds;
  m.plan_bw_seconds = pr.bandwidth_seconds;
  m.plan_lat_seconds = pr.latency_seconds;
  m.uniform_seconds = pu.seconds;
  m.uniform_bw_seconds = pu.bandwidth_seconds;
  m.speedup = pr.seconds > 0 ? pu.seconds / pr.seconds : 1;
  m.bw_speedup = pr.bandwidth_seconds > 0 ? pu.bandwidth_seconds / pr.bandwidth_seconds : 1;
}

Plan make_plan(const topo::CostModel& cm, const MoeShape& shape, const PlanOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  shape.validate();
  validate_options(opt);
  cm.validate("cost model");
  const int P = cm.nranks();
  if (P > kDenseMaxRanks)
    fail(Status::invalid_argument, "planner",
         str("at most ", kDenseMaxRanks, " ranks in a cost model (a dense plan)"),
         str(P, " ranks; plan a synthetic cluster with --mode sym"));
  const double V = shape.volume_bytes();
  Plan p = base_plan(P, shape, opt);
  p.source = cm.source();
  p.node.resize(P);
  p.leaf.resize(P);
  for (int r = 0; r < P; ++r) {
    p.node[r] = cm.node_of(r);
    p.leaf[r] = cm.leaf_of(r);
  }
  std::string mode = opt.mode;
  ReducedProblem reduced;
  bool have_reduced = false;
  if (mode == "auto") {
    if (have_clp() && P <= kAutoLpMaxRanks) {
      mode = "lp";
    } else if (have_clp()) {
      try {
        reduced = reduce(cm, V);
        have_reduced = true;
        mode = "sym";
      } catch (const Error& e) {
        TAMOE_LOGF(info, "plan") << "not a regular hierarchy (" << e.what() << "): sinkhorn";
        mode = "sinkhorn";
      }
    } else {
      mode = "sinkhorn";
    }
  }
  p.mode = parse_mode(mode, "plan options mode");
  switch (p.mode) {
    case Mode::lp: {
      LpPlanResult r = solve_dispatch_lp(cm, V, opt.rho);
      p.x = std::move(r.x);
      p.solver = str("clp, epigraph LP (", P * P + 1, " columns, ", r.link_rows, " link rows)");
      p.iterations = r.iterations;
      break;
    }
    case Mode::sym: {
      if (!have_reduced) reduced = reduce(cm, V);
      ReducedSolution r = solve_reduced(reduced, V, opt.rho);
      p.is_ladder = true;
      p.ladder_x = r.x;
      p.solver = str("symmetry-reduced LP (clp, ", reduced.links.size(), " link classes)");
      p.iterations = r.iterations;
      break;
    }
    case Mode::sinkhorn: {
      SinkhornPick s = plan_sinkhorn(cm, shape, opt);
      p.x = std::move(s.x);
      p.eps = s.eps;
      p.iterations = s.iterations;
      p.solver = "bounded Sinkhorn (Dykstra box projection)";
      break;
    }
    case Mode::uniform:
      p.x.assign(static_cast<size_t>(P) * P, 1.0 / P);
      p.solver = "uniform";
      break;
  }
  p.validate("planner result");
  compute_structure_metrics(p);
  predict_metrics(p, cm);
  p.solve_seconds = seconds_since(t0);
  return p;
}

Plan make_plan(const topo::SyntheticCluster& c, const MoeShape& shape, const PlanOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  shape.validate();
  validate_options(opt);
  const int64_t P = static_cast<int64_t>(c.nodes) * c.ranks_per_node;
  const bool analytic =
      opt.mode == "sym" || (opt.mode == "auto" && (P > kAutoLpMaxRanks || !have_clp()));
  if (!analytic || (opt.mode == "auto" && !have_clp())) {
    if (P > kDenseMaxRanks)
      fail(Status::invalid_argument, str("planner mode ", opt.mode),
           str("at most ", kDenseMaxRanks, " ranks for a dense plan"),
           str(P, " ranks; use --mode sym"));
    return make_plan(topo::make_synthetic(c), shape, opt);
  }
  const double V = shape.volume_bytes();
  ReducedProblem reduced = reduce(c);
  ReducedSolution r = solve_reduced(reduced, V, opt.rho);
  Plan p = base_plan(reduced.nranks, shape, opt);
  p.mode = Mode::sym;
  p.source = reduced.source;
  p.node = std::move(reduced.node);
  p.leaf = std::move(reduced.leaf);
  p.is_ladder = true;
  p.ladder_x = r.x;
  p.solver =
      str("symmetry-reduced LP (clp, closed-form counts, ", reduced.links.size(), " link classes)");
  p.iterations = r.iterations;
  p.validate("planner result");
  compute_structure_metrics(p);
  LadderTimes tp = ladder_times(reduced, r.x, V);
  const double u = 1.0 / reduced.nranks;
  LadderTimes tu = ladder_times(reduced, {u, u, u, u}, V);
  Metrics& m = p.metrics;
  m.plan_seconds = tp.seconds();
  m.plan_bw_seconds = tp.bw_seconds;
  m.plan_lat_seconds = tp.lat_seconds;
  m.uniform_seconds = tu.seconds();
  m.uniform_bw_seconds = tu.bw_seconds;
  m.speedup = tp.seconds() > 0 ? tu.seconds() / tp.seconds() : 1;
  m.bw_speedup = tp.bw_seconds > 0 ? tu.bw_seconds / tp.bw_seconds : 1;
  p.solve_seconds = seconds_since(t0);
  return p;
}

std::vector<TradeoffPoint> tradeoff_curve(const topo::CostModel& cm, const MoeShape& shape,
                                          double rho, int points, double eps_min, double eps_max) {
  shape.validate();
  check_rho(rho, "trade-off curve");
  if (points < 2 || !(eps_min > 0) || !(eps_max > eps_min) || !std::isfinite(eps_max))
    fail(Status::invalid_argument, "trade-off curve", "points >= 2 and 0 < eps_min < eps_max",
         str(points, " points, eps ", eps_min, "..", eps_max));
  const int P = cm.nranks();
  const double V = shape.volume_bytes();
  std::vector<double> u(static_cast<size_t>(P) * P, 1.0 / P);
  const double tu = predicted_seconds(cm, u, V);
  std::vector<TradeoffPoint> out;
  out.push_back({0, 0, tu, 1, "uniform"});
  std::vector<double> cost = route_cost_matrix(cm, V);
  for (int k = 0; k < points; ++k) {
    double eps = eps_max * std::pow(eps_min / eps_max, double(k) / (points - 1));
    SinkhornPick s = run_sinkhorn(cost, P, eps, rho, 20000);
    double t = predicted_seconds(cm, s.x, V);
    out.push_back({eps, kl_from_uniform(s.x, P), t, t > 0 ? tu / t : 1, "sinkhorn"});
  }
  if (have_clp() && P <= kAutoLpMaxRanks) {
    LpPlanResult r = solve_dispatch_lp(cm, V, rho);
    double t = predicted_seconds(cm, r.x, V);
    out.push_back({0, kl_from_uniform(r.x, P), t, t > 0 ? tu / t : 1, "lp"});
  }
  return out;
}

}  // namespace tamoe::plan
