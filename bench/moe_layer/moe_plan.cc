#include "bench/moe_layer/moe_plan.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

#ifdef TAMOE_BENCH_HAVE_PLANNER
#include "planner/planner.h"
#endif

namespace tamoe::bench::moe {

TwoLevelLadder fallback_two_level_plan(int n, int m, double beta, double rho) {
  const char* where = "fallback_two_level_plan";
  if (n < 1 || m < 1) fail(Status::invalid_argument, where, "n, m >= 1", str(n, " x ", m));
  if (!(rho >= 1) || !std::isfinite(rho))
    fail(Status::invalid_argument, where, "rho >= 1 and finite", str(rho));
  if (!(beta > 0) || !std::isfinite(beta))
    fail(Status::invalid_argument, where, "beta > 0 and finite", str(beta));
  const int P = n * m;
  TwoLevelLadder l;
  l.beta = beta;
  const double x_star = 1.0 / (m + (m - 1) * beta);
  l.rho_star = P * x_star;
  const double r = std::min(1.0, rho / P);
  if (n == 1) {  // one node: nothing to plan
    l.self = l.node = 1.0 / m;
    return l;
  }
  if (m == 1 || rho <= l.rho_star) {
    l.self = r;
    l.node = m > 1 ? r : 0;
    l.remote = (1.0 - m * r) / ((n - 1) * m);
  } else {
    l.self = r;
    l.node = (1.0 - r) / ((m - 1) * (1.0 + beta));
    l.remote = (1.0 - r - (m - 1) * l.node) / ((n - 1) * m);
    if (l.remote > r) {
      // beta large (inter-node at least as fast per rank as intra): equalizing would push the
      // remote entries past the bound, so they stay at it and the node peers take the rest.
      l.remote = r;
      l.node = (1.0 - r - (n - 1) * m * r) / (m - 1);
    }
  }
  return l;
}

std::vector<double> ladder_to_dense(const TwoLevelLadder& l, const std::vector<int>& node_of) {
  const int P = static_cast<int>(node_of.size());
  std::vector<double> x(static_cast<size_t>(P) * P);
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j)
      x[static_cast<size_t>(i) * P + j] =
          i == j ? l.self : (node_of[i] == node_of[j] ? l.node : l.remote);
  return x;
}

double model_beta(const topo::CostModel& cm, const std::vector<int>& node_of, int n, int m,
                  double volume_bytes) {
  const int P = static_cast<int>(node_of.size());
  if (cm.nranks() != P)
    fail(Status::mismatch, "model_beta", str("a cost model of ", P, " ranks"),
         str(cm.nranks(), " ranks"));
  if (n < 2 || m < 2) return 1;  // one level only: beta does not enter the plan
  std::vector<double> intra(static_cast<size_t>(P) * P, 0), inter(intra.size(), 0);
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) {
      if (i == j) continue;
      if (node_of[i] == node_of[j])
        intra[static_cast<size_t>(i) * P + j] = volume_bytes / (m - 1);
      else
        inter[static_cast<size_t>(i) * P + j] = volume_bytes / ((n - 1) * m);
    }
  const double t_intra = cm.predict_seconds(intra), t_inter = cm.predict_seconds(inter);
  if (!(t_intra > 0) || !(t_inter > 0))
    fail(Status::invalid_input, "model_beta", "positive modeled intra and inter times",
         str(t_intra, " s and ", t_inter, " s"));
  return t_intra / t_inter;
}

void check_plan(const std::vector<double>& x, int P, double rho, const std::string& where,
                double tol) {
  if (static_cast<int64_t>(x.size()) != static_cast<int64_t>(P) * P)
    fail(Status::invalid_input, where, str(P, " x ", P, " entries"), str(x.size()));
  const double bound = std::min(1.0, rho / P) + tol;
  for (int i = 0; i < P; ++i) {
    double row = 0, col = 0;
    for (int j = 0; j < P; ++j) {
      double v = x[static_cast<size_t>(i) * P + j];
      if (!(v >= -tol) || v > bound)
        fail(Status::invalid_input, str(where, ": X[", i, "][", j, "]"),
             str("0 <= X_ij <= min(1, rho/P) = ", bound - tol), str(v));
      row += v;
      col += x[static_cast<size_t>(j) * P + i];
    }
    if (std::abs(row - 1) > tol)
      fail(Status::invalid_input, str(where, ": row ", i), "sum 1", str(row));
    if (std::abs(col - 1) > tol)
      fail(Status::invalid_input, str(where, ": column ", i), "sum 1", str(col));
  }
}

bool have_planner() {
#ifdef TAMOE_BENCH_HAVE_PLANNER
  return true;
#else
  return false;
#endif
}

TaPlan make_ta_plan(const topo::CostModel& cm, const std::vector<int>& node_of, int n, int m,
                    int experts_per_rank, int64_t tokens, int k, int64_t hidden,
                    double capacity_factor, double rho, const std::string& source,
                    const std::string& planner_mode) {
  if (source != "auto" && source != "planner" && source != "closed-form")
    fail(Status::invalid_argument, "--plan", "auto, planner or closed-form", source);
  const int P = static_cast<int>(node_of.size());
  if (P != n * m)
    fail(Status::invalid_argument, "make_ta_plan", str(n, " x ", m, " = ", n * m, " ranks"),
         str(P, " ranks"));
  const double volume = static_cast<double>(tokens) * k * static_cast<double>(hidden) * 4;
  TaPlan out;
  out.rho = rho;
  out.beta = model_beta(cm, node_of, n, m, volume);
  bool use_planner = source == "planner" || (source == "auto" && have_planner());
  if (use_planner) {
#ifdef TAMOE_BENCH_HAVE_PLANNER
    plan::MoeShape shape;
    shape.experts_per_rank = experts_per_rank;
    shape.tokens_per_rank = tokens;
    shape.top_k = k;
    shape.hidden = hidden;
    shape.bytes_per_element = 4;
    shape.capacity_factor = capacity_factor;
    plan::PlanOptions o;
    o.rho = rho;
    o.mode = planner_mode;
    plan::Plan p = plan::make_plan(cm, shape, o);
    out.x = p.dense();
    out.source = str("planner (", plan::mode_name(p.mode), ", ", p.solver, ")");
    out.planner_speedup = p.metrics.speedup;
#else
    (void)experts_per_rank;
    (void)capacity_factor;
    (void)planner_mode;
    fail(Status::unavailable, "--plan planner", "a build with src/planner",
         "this build has no planner (use --plan closed-form)");
#endif
  } else {
    out.x = ladder_to_dense(fallback_two_level_plan(n, m, out.beta, rho), node_of);
    out.source = "closed-form fallback";
  }
  check_plan(out.x, P, rho, out.source);
  return out;
}

}  // namespace tamoe::bench::moe
