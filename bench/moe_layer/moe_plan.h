// The TA dispatch plan X (P x P) the MoE-layer benchmark routes toward (DESIGN.md section 3).
//
// Two sources: the planner (src/planner, when the build has it) and a two-level closed form kept
// here as a fallback, so the benchmark also runs on a tree without the planner. Both are checked
// the same way (marginals, bound) before the gate is taught the plan.
#pragma once

#include <string>
#include <vector>

#include "topology/cost_model.h"

namespace tamoe::bench::moe {

// Per-rank-pair values of a two-level plan on n nodes x m ranks (rank = node * m + local).
struct TwoLevelLadder {
  double self = 0, node = 0, remote = 0;
  double beta = 0;      // B_inter_per_rank / B_intra the plan was built for
  double rho_star = 0;  // the bound at which DESIGN.md's x* is the LP optimum
};

// FALLBACK (used while src/planner is not in the build, or with --plan closed-form): DESIGN.md's
// two-level closed form with the bound X_ij <= r = min(1, rho/P) applied. Self copies use no link,
// so the LP optimum puts X_ii at r. With x* = 1/(m + (m-1) beta) and rho* = P x*:
//   rho <= rho*: self = node = r, remote = (1 - m r) / ((n-1) m)   (the bound binds everywhere
//                near; the rest goes off-node evenly);
//   rho >  rho*: self = r, node = (1 - r) / ((m-1)(1 + beta)), remote = the rest evenly
//                (intra and inter link times equal), unless that puts remote above r (beta
//                large): then remote = r and the node peers take the rest.
// n == 1 or rho == 1 gives uniform. Throws on n, m < 1, rho < 1 or beta not finite > 0.
TwoLevelLadder fallback_two_level_plan(int nodes, int ranks_per_node, double beta, double rho);

// Dense X from a ladder; node_of[r] is rank r's node (P entries).
std::vector<double> ladder_to_dense(const TwoLevelLadder& l, const std::vector<int>& node_of);

// beta of the cost model for a per-rank volume: the time of every rank sending `volume_bytes`
// evenly to its node peers, over the time of every rank sending it evenly to remote ranks
// (= B_inter_per_rank / B_intra in DESIGN.md's terms, link sharing included).
// n nodes of m ranks each, node_of[r] as above.
double model_beta(const topo::CostModel& m, const std::vector<int>& node_of, int nodes,
                  int ranks_per_node, double volume_bytes);

// Throws tamoe::Error (naming the row/column/entry) unless rows and columns sum to 1 within tol
// and 0 <= X_ij <= min(1, rho/P) + tol.
void check_plan(const std::vector<double>& x, int P, double rho, const std::string& where,
                double tol = 1e-6);

struct TaPlan {
  std::vector<double> x;  // P*P, row = sender
  std::string source;     // "planner (<mode>, <solver>)" or "closed-form fallback"
  double rho = 1;
  double beta = 0;             // model_beta at the plan's volume
  double planner_speedup = 0;  // the planner's own predicted dispatch speedup (0: not given)
};

// Builds the plan for n x m ranks (node_of[r] = rank r's node) at volume V = S*k*H*4 bytes.
// `source`: "planner", "closed-form", or "auto" (planner when built with it); planner_mode is
// the planner's PlanOptions::mode (auto, lp, sym, sinkhorn). Throws when "planner"
// is asked for and the build has none.
TaPlan make_ta_plan(const topo::CostModel& m, const std::vector<int>& node_of, int nodes,
                    int ranks_per_node, int experts_per_rank, int64_t tokens, int k, int64_t hidden,
                    double capacity_factor, double rho, const std::string& source,
                    const std::string& planner_mode = "auto");

bool have_planner();

}  // namespace tamoe::bench::moe
