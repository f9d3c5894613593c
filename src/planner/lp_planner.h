// The exact planner: the linear program of DESIGN.md section 3 in epigraph form, for any link
// graph,
//   minimize t  s.t.  sum_{(i,j) routed through l} V X_ij / B_l <= t   for every link l
//                     (and V X_ii / B_self <= t when self copies have a bandwidth),
//                     sum_j X_ij = 1, sum_i X_ij = 1, 0 <= X_ij <= min(1, rho/P).
// The latency term of the cost model is left out of the objective (treated as a constant: it
// depends only on which pairs carry traffic, and a plan that silences a pair is a corner case the
// bound makes rare); the reported time adds it back through CostModel::predict.
// Links with a measured bandwidth curve are linearized at the uniform plan's operating point
// (message V/P, or sender volume V, per the model's curve key).
#pragma once

#include <vector>

#include "topology/cost_model.h"

namespace tamoe::plan {

struct LpPlanResult {
  std::vector<double> x;  // P*P, row-major
  double bw_seconds = 0;  // optimum t in seconds (the bandwidth part of T(V X))
  int iterations = 0;
  double seconds = 0;  // wall time of build + solve
  int link_rows = 0;   // link constraints after merging identical ones
};

// Throws (Status::invalid_argument) for rho < 1 or non-finite, volume <= 0, an unreachable pair.
LpPlanResult solve_dispatch_lp(const topo::CostModel& cm, double volume_bytes, double rho);

// The bandwidth (GB/s) the linear models use for link l: its curve at the uniform plan's
// operating point, else its constant bandwidth.
double plan_link_bw_gbps(const topo::CostModel& cm, int link, double volume_bytes);
// The link that carries rank r's self copy when the model charges self copies to the ingress
// link (self_on_ingress), else -1; mirrors CostModel::predict.
int self_ingress_link(const topo::CostModel& cm, int rank);
// Rescales rows and columns of a nearly doubly stochastic X and clips it to [0, hi] until both
// marginals are within 1e-13; removes the 1e-10 residue solvers leave.
void polish_marginals(std::vector<double>& x, int nranks, double hi);
// The largest |row sum - 1| or |column sum - 1|.
double marginal_error(const std::vector<double>& x, int nranks);
// Throws Status::invalid_argument naming the field when rho is not a finite number >= 1.
void check_rho(double rho, const std::string& where);

}  // namespace tamoe::plan
