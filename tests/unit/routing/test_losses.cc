#include <cmath>
#include <functional>
#include <random>

#include "catch_compat.h"
#include "routing/gate.h"
#include "routing/losses.h"
#include "runtime/error.h"

using namespace tamoe::route;

namespace {

MatrixRd random_logits(int s, int n, unsigned seed, double scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, scale);
  MatrixRd m(s, n);
  for (int i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

// max |analytic - central difference| / max |central difference| over all logits.
double fd_rel_error(const std::function<LossGrad(const MatrixRd&)>& loss, const MatrixRd& z) {
  const double h = 1e-5;
  const LossGrad a = loss(z);
  MatrixRd fd(z.rows(), z.cols());
  MatrixRd zp = z;
  for (int i = 0; i < z.size(); ++i) {
    const double v = z.data()[i];
    zp.data()[i] = v + h;
    const double up = loss(zp).value;
    zp.data()[i] = v - h;
    const double down = loss(zp).value;
    zp.data()[i] = v;
    fd.data()[i] = (up - down) / (2 * h);
  }
  const double scale = fd.cwiseAbs().maxCoeff();
  REQUIRE(scale > 0);
  return (a.grad - fd).cwiseAbs().maxCoeff() / scale;
}

Eigen::VectorXd share_of_topk(const MatrixRd& z, int k, const ExpertLayout& l) {
  GateOptions o;
  o.k = k;
  o.overflow = Overflow::dropless;
  return assignment_share(select_topk(z.cast<float>(), Eigen::VectorXf(), l, o).expert_count);
}

}  // namespace

TEST_CASE("loss gradients match double-precision finite differences", "[routing]") {
  auto layout = ExpertLayout::regular(4, 3, 2);  // 12 experts
  for (double scale : {0.5, 3.0}) {
    INFO("logit scale " << scale);
    MatrixRd z = random_logits(24, 12, 11, scale);
    z.row(3).array() += 40.0;  // large logits must not overflow
    const Eigen::VectorXd f = share_of_topk(z, 2, layout);
    Eigen::VectorXd target(12);
    for (int e = 0; e < 12; ++e) target[e] = 1.0 + e % 4;
    target /= target.sum();
    CHECK(fd_rel_error([&](const MatrixRd& x) { return switch_loss(x, f); }, z) <= 1e-6);
    CHECK(fd_rel_error([&](const MatrixRd& x) { return topo_loss(x, f, target); }, z) <= 1e-6);
    CHECK(fd_rel_error([&](const MatrixRd& x) { return z_loss(x); }, z) <= 1e-6);
  }
}

TEST_CASE("loss values match their definitions", "[routing]") {
  auto layout = ExpertLayout::regular(2, 4, 1);
  MatrixRd z = random_logits(10, 8, 12, 1.0);
  const Eigen::VectorXd f = share_of_topk(z, 2, layout);
  Eigen::VectorXd p = Eigen::VectorXd::Zero(8);
  double z2 = 0;
  for (int t = 0; t < 10; ++t) {
    double sum = 0;
    for (int e = 0; e < 8; ++e) sum += std::exp(z(t, e));
    for (int e = 0; e < 8; ++e) p[e] += std::exp(z(t, e)) / sum / 10;
    z2 += std::log(sum) * std::log(sum) / 10;
  }
  CHECK(switch_loss(z, f).value == Catch::Approx(8 * f.dot(p)).epsilon(1e-12));
  const Eigen::VectorXd uniform = Eigen::VectorXd::Constant(8, 1.0 / 8);
  CHECK(topo_loss(z, f, uniform).value == Catch::Approx(switch_loss(z, f).value).epsilon(1e-12));
  CHECK(z_loss(z).value == Catch::Approx(z2).epsilon(1e-12));
  // Zero tokens: zero loss, empty gradient.
  MatrixRd none(0, 8);
  CHECK(switch_loss(none, f).value == 0.0);
  CHECK(z_loss(none).grad.rows() == 0);
}

TEST_CASE("targets from a plan row and bad targets", "[routing]") {
  auto layout = ExpertLayout::regular(4, 2, 2);
  auto t = target_from_plan({0.4, 0.3, 0.2, 0.1}, layout);
  CHECK(t[0] == Catch::Approx(0.2));
  CHECK(t[7] == Catch::Approx(0.05));
  CHECK_THROWS_AS(target_from_plan({0.4, 0.3, 0.2}, layout), tamoe::Error);
  CHECK_THROWS_AS(target_from_plan({0.5, 0.5, 0.0, 0.0}, layout), tamoe::Error);  // t(e) = 0
  MatrixRd z = random_logits(4, 8, 13, 1.0);
  z(2, 6) = NAN;
  try {
    z_loss(z);
    FAIL("no error for a NaN logit");
  } catch (const tamoe::Error& e) {
    CHECK(std::string(e.what()).find("token 2, expert 6") != std::string::npos);
  }
}
