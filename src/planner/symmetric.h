// The symmetry-reduced planner for regular hierarchies. When every rank sees the same number of
// destinations at each level (self, node, leaf, remote) and the link graph looks the same from
// every rank, the LP of lp_planner.h has an optimum where all pairs of one level share one value
// (average any optimum over the symmetry group: the constraints are invariant and convex). The
// problem then has one variable per level plus t and one constraint per class of links, however
// many ranks there are.
//
// Two front ends build the reduced problem: from a CostModel (counts pairs per link by walking
// all routes; any graph with regular level counts, O(P^2)) and from a SyntheticCluster (counts
// in closed form, O(1): plans 16,384 ranks in microseconds without building the graph). On a
// graph that is regular in counts but not symmetric (e.g. probed links of unequal speed) the
// first gives the best ladder plan, which the full LP may beat.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "planner/plan.h"
#include "topology/cost_model.h"
#include "topology/synthetic.h"

namespace tamoe::plan {

struct ReducedProblem {
  int nranks = 0;
  std::array<int64_t, kLevels> count{};  // destinations per rank at each level (count[0] = 1)
  struct LinkClass {
    std::string name;
    double bw_gbps = 0;
    std::array<double, kLevels> pairs{};  // pairs of each level routed through one such link
  };
  std::vector<LinkClass> links;
  // Per rank, summed route latency (us) to all destinations of each level; the latency term of
  // a ladder is latency_overlap * max_i sum_{levels with X > 0} lat_sum_us[i][level].
  std::vector<std::array<double, kLevels>> lat_sum_us;
  double latency_overlap = 1;
  std::vector<int> node, leaf;
  std::string source;
};

// From any cost model whose ranks all have the same level counts; throws naming the first rank
// that differs. Self copies: a self bandwidth becomes a class, self_on_ingress adds to the
// ingress link's class.
ReducedProblem reduce(const topo::CostModel& cm, double volume_bytes);
// Closed-form counts for make_synthetic's graph (same links, same routes); needs nodes divisible
// by nodes_per_leaf.
ReducedProblem reduce(const topo::SyntheticCluster& c);

struct LadderTimes {
  double bw_seconds = 0, lat_seconds = 0;
  double seconds() const { return bw_seconds + lat_seconds; }
};
// The cost model's T(V X) for the ladder X_ij = x[level(i, j)], from the reduced problem.
LadderTimes ladder_times(const ReducedProblem& r, const std::array<double, kLevels>& x,
                         double volume_bytes);

struct ReducedSolution {
  std::array<double, kLevels> x{};
  double bw_seconds = 0;
  int iterations = 0;
  double seconds = 0;
};
// Solves min t over ladders with CLP (rho checked as in the LP).
ReducedSolution solve_reduced(const ReducedProblem& r, double volume_bytes, double rho);

// DESIGN.md's two-level closed form, n nodes x m ranks, beta = B_inter_per_rank / B_intra:
// x* = 1/(m + (m-1) beta) per same-node destination (self included), y* = (m-1) beta x* /
// ((n-1) m) per remote one; this equalizes the intra and inter link times when X_ii = x*.
// In the LP, X_ii is its own variable and self copies are free, so the optimum puts X_ii at the
// bound r = min(1, rho/P); the closed form is the LP optimum exactly at rho* = P x*, where the
// bound binds for self and node peers alike. For other rho the LP optimum is, with B = B_intra:
//   rho <= rho*: self = node = r, remote row total R = 1 - m r,            T = V R / B_inter
//   rho >= rho*: self = r, node = (1-r)/((m-1)(1+beta)), R = 1 - r - (m-1) node,
//                T = V (m-1) node / B
struct TwoLevelClosedForm {
  double x_star = 0, y_star = 0, rho_star = 0;  // the design's formula
  double self = 0, node = 0, remote = 0;        // LP optimum per entry at the given rho
  double bw_seconds = 0;                        // its bandwidth time
};
TwoLevelClosedForm two_level_closed_form(int nodes, int ranks_per_node, double intra_bw_gbps,
                                         double inter_bw_per_rank_gbps, double volume_bytes,
                                         double rho);

}  // namespace tamoe::plan
