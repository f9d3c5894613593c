#include <Eigen/Dense>
#include <cmath>

#include "runtime/error.h"
#include "topology/probe.h"

namespace tamoe::topo {

AlphaBetaFit fit_alpha_beta(const std::vector<ProbePoint>& points) {
  if (points.size() < 2)
    fail(Status::invalid_argument, "fit_alpha_beta", "at least 2 probe points", str(points.size()));
  // Minimize sum ((alpha + x_k * inv_bw - t_k) / t_k)^2: a weighted linear least squares problem.
  Eigen::MatrixXd A(points.size(), 2);
  Eigen::VectorXd b(points.size());
  for (size_t k = 0; k < points.size(); ++k) {
    double t = points[k].seconds;
    if (!(t > 0) || !std::isfinite(t))
      fail(Status::invalid_argument, str("fit_alpha_beta point ", k), "a positive finite time",
           str(t));
    A(k, 0) = 1.0 / t;
    A(k, 1) = static_cast<double>(points[k].bytes) / t;
    b(k) = 1.0;
  }
  Eigen::Vector2d x = A.colPivHouseholderQr().solve(b);
  AlphaBetaFit f;
  f.alpha_s = std::max(0.0, x(0));
  double inv_bw = x(1);
  if (!(inv_bw > 0)) {
    // Times did not grow with size (noise dominated): fall back to the largest point's rate.
    const ProbePoint& big = points.back();
    inv_bw = std::max(1e-15, (big.seconds - f.alpha_s) / std::max<double>(1, big.bytes));
  }
  f.bw_bytes_per_s = 1.0 / inv_bw;
  double s = 0;
  for (const auto& p : points) {
    double e = (f.predict(static_cast<double>(p.bytes)) - p.seconds) / p.seconds;
    s += e * e;
  }
  f.rel_rms_err = std::sqrt(s / points.size());
  return f;
}

}  // namespace tamoe::topo
