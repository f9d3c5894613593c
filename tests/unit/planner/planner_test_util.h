// Helpers shared by the planner tests: plain double-precision references, no planner code.
#pragma once

#include <cmath>
#include <vector>

#include "planner/plan.h"

namespace tamoe::test {

inline double max_marginal_error(const std::vector<double>& x, int P) {
  double err = 0;
  for (int i = 0; i < P; ++i) {
    double r = 0, c = 0;
    for (int j = 0; j < P; ++j) {
      r += x[size_t(i) * P + j];
      c += x[size_t(j) * P + i];
    }
    err = std::max({err, std::abs(r - 1), std::abs(c - 1)});
  }
  return err;
}

// Largest amount by which an entry leaves [0, min(1, rho/P)].
inline double max_bound_violation(const std::vector<double>& x, int P, double rho) {
  double hi = std::min(1.0, rho / P), v = 0;
  for (double e : x) v = std::max({v, -e, e - hi});
  return v;
}

inline std::vector<double> scaled(const std::vector<double>& x, double s) {
  std::vector<double> d(x);
  for (double& e : d) e *= s;
  return d;
}

}  // namespace tamoe::test
