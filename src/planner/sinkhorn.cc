#include "planner/sinkhorn.h"

#include <algorithm>
#include <cmath>

#include "planner/lp_planner.h"
#include "runtime/error.h"

namespace tamoe::plan {

std::vector<double> route_cost_matrix(const topo::CostModel& cm, double volume_bytes) {
  const int P = cm.nranks();
  std::vector<double> c(static_cast<size_t>(P) * P, 0.0);
  double cmax = 0;
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) {
      double s = 0;
      if (i == j) {
        int l = self_ingress_link(cm, i);
        if (l >= 0)
          s = 1 / plan_link_bw_gbps(cm, l, volume_bytes);
        else if (cm.self_bw_gbps() > 0)
          s = 1 / cm.self_bw_gbps();
      } else {
        for (int l : cm.route(i, j)) s += 1 / plan_link_bw_gbps(cm, l, volume_bytes);
      }
      c[static_cast<size_t>(i) * P + j] = s;
      cmax = std::max(cmax, s);
    }
  if (cmax > 0)
    for (double& v : c) v /= cmax;
  return c;
}

SinkhornResult bounded_sinkhorn(const std::vector<double>& cost, int nranks,
                                const SinkhornOptions& opt) {
  const std::string where = "Sinkhorn planner";
  if (!std::isfinite(opt.eps) || opt.eps <= 0)
    fail(Status::invalid_argument, where + " eps", "a positive finite temperature", str(opt.eps));
  check_rho(opt.rho, where);
  const size_t P = static_cast<size_t>(nranks);
  if (nranks < 1 || cost.size() != P * P)
    fail(Status::invalid_argument, where + " cost", str("a ", P, "x", P, " matrix"),
         str(cost.size(), " entries"));
  double cmin = 1e300;
  for (size_t k = 0; k < cost.size(); ++k) {
    if (!std::isfinite(cost[k]) || cost[k] < 0)
      fail(Status::invalid_argument, str(where, " cost[", k / P, "][", k % P, "]"),
           "a non-negative finite cost", str(cost[k]));
    cmin = std::min(cmin, cost[k]);
  }
  const double hi = std::min(1.0, opt.rho / nranks);
  SinkhornResult res;
  std::vector<double>& x = res.x;
  x.resize(P * P);
  // Shifting C by its minimum changes nothing after scaling and keeps exp() away from underflow.
  for (size_t k = 0; k < x.size(); ++k) x[k] = std::exp(-(cost[k] - cmin) / opt.eps);
  std::vector<double> q(P * P, 1.0), col(P);
  for (res.iterations = 0; res.iterations < opt.max_iter; ++res.iterations) {
    for (size_t i = 0; i < P; ++i) {
      double row = 0;
      for (size_t j = 0; j < P; ++j) row += x[i * P + j];
      // A row that underflowed entirely restarts from uniform rather than dividing by zero.
      if (row <= 0 || !std::isfinite(row)) {
        for (size_t j = 0; j < P; ++j) x[i * P + j] = 1.0 / P;
        continue;
      }
      for (size_t j = 0; j < P; ++j) x[i * P + j] /= row;
    }
    std::fill(col.begin(), col.end(), 0.0);
    for (size_t i = 0; i < P; ++i)
      for (size_t j = 0; j < P; ++j) col[j] += x[i * P + j];
    for (size_t i = 0; i < P; ++i)
      for (size_t j = 0; j < P; ++j)
        if (col[j] > 0) x[i * P + j] /= col[j];
    // Dykstra step for the box: project (x * q) and keep the part the clip removed in q.
    for (size_t k = 0; k < x.size(); ++k) {
      double y = x[k] * q[k];
      double z = std::min(y, hi);
      q[k] = z > 0 ? y / z : 1.0;
      x[k] = z;
    }
    res.marginal_error = marginal_error(x, nranks);
    if (res.marginal_error <= opt.tol) {
      res.converged = true;
      ++res.iterations;
      break;
    }
  }
  return res;
}

}  // namespace tamoe::plan
