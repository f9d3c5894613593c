// The entropic planner: min <C, X> - eps H(X) over doubly stochastic X with 0 <= X_ij <= rho/P,
// H(X) = -sum X_ij log X_ij. C_ij is the time per byte along the route i -> j (sum of 1/B_l over
// its links), scaled so the largest entry is 1, so eps is relative and dimensionless. The
// solution is the KL projection of exp(-C/eps) onto {rows = 1} n {columns = 1} n {X <= rho/P}:
// Sinkhorn's row and column scalings for the two affine sets and a clip for the box, with
// Dykstra's correction for the box (Benamou et al. 2015, "Iterative Bregman projections for
// regularized transportation problems", capacity constraints). Large eps gives uniform routing,
// small eps approaches the cheapest-route transport plan: sweeping eps draws the trade-off
// between predicted time and distance from uniform.
#pragma once

#include <vector>

#include "topology/cost_model.h"

namespace tamoe::plan {

// C (P*P, row-major) in units of the largest route cost; self copies cost 1/self_bw (or their
// ingress link) and nothing when free.
std::vector<double> route_cost_matrix(const topo::CostModel& cm, double volume_bytes);

struct SinkhornOptions {
  double eps = 0.1;      // relative temperature, > 0
  double rho = 2;        // bound X_ij <= min(1, rho/P)
  int max_iter = 20000;  // sweeps (row + column + box); small eps converges slowly
  double tol = 1e-12;    // stop when both marginals are within tol after the box step
};

struct SinkhornResult {
  std::vector<double> x;
  int iterations = 0;
  double marginal_error = 0;  // max |row or column sum - 1| of x
  bool converged = false;
};

// Throws Status::invalid_argument for eps <= 0 or non-finite, rho < 1, a C of the wrong size or
// with negative / non-finite entries. Not converging within max_iter is reported, not thrown.
SinkhornResult bounded_sinkhorn(const std::vector<double>& cost, int nranks,
                                const SinkhornOptions& opt);

}  // namespace tamoe::plan
