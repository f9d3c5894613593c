// The planner's front door: a cost model (or a synthetic cluster) + the MoE shape + options in,
// a Plan out with its predicted times. Modes (DESIGN.md section 3):
//   lp        exact linear program with CLP (lp_planner.h), any graph, P up to a few hundred;
//   sym       symmetry-reduced LP (symmetric.h), regular hierarchies, any P;
//   sinkhorn  entropic plan (sinkhorn.h), eps chosen by a KL budget, given, or by a sweep;
//   uniform   X = 1/P (the baseline);
//   automatic lp for P <= 256 with CLP, else sym when the hierarchy is regular, else sinkhorn.
#pragma once

#include <string>
#include <vector>

#include "planner/plan.h"
#include "topology/cost_model.h"
#include "topology/synthetic.h"

namespace tamoe::plan {

struct PlanOptions {
  std::string mode = "auto";  // lp, sym, sinkhorn, uniform, auto
  double rho = 2;             // X_ij <= min(1, rho/P); 1 forces uniform
  double kl_budget = -1;      // sinkhorn: the plan of smallest eps with KL <= budget (nats)
  double eps = 0;             // sinkhorn: a fixed relative temperature (0: sweep for the best)
  int sinkhorn_max_iter = 20000;
};

// Checks options (rho >= 1 and finite, mode known, budget/eps finite) and throws naming the field.
void validate_options(const PlanOptions& o, const std::string& where = "plan options");

Plan make_plan(const topo::CostModel& cm, const MoeShape& shape, const PlanOptions& opt);
// Builds the cost model when the dense modes need it (P <= 2048); a sym (or auto) plan of a
// larger cluster is solved from closed-form counts without building the graph.
Plan make_plan(const topo::SyntheticCluster& c, const MoeShape& shape, const PlanOptions& opt);

// Fills plan/uniform predicted times and the speedup of a dense plan through CostModel::predict.
void predict_metrics(Plan& p, const topo::CostModel& cm);

struct TradeoffPoint {
  double eps = 0;      // 0 for the LP / uniform reference points
  double kl = 0;       // nats, as Metrics::kl_from_uniform
  double seconds = 0;  // predicted dispatch time (CostModel::predict)
  double speedup = 1;  // over uniform
  std::string label;   // "sinkhorn", "lp", "uniform"
};
// Sinkhorn plans over eps (log-spaced from eps_max down to eps_min, `points` of them) at the
// bound rho, plus the uniform plan and, with CLP, the LP plan as reference points.
std::vector<TradeoffPoint> tradeoff_curve(const topo::CostModel& cm, const MoeShape& shape,
                                          double rho, int points = 16, double eps_min = 0.01,
                                          double eps_max = 10);

}  // namespace tamoe::plan
