// A linear gate logits = X W on random features, trained by plain gradient descent on the balance
// loss alone (task-free), must bring the top-k assignment shares to the loss's fixed point: the
// plan's target for the topology-aware loss, uniform for Switch/GShard. The loss-free bias
// controller must reach the target without touching W.
#include <cmath>
#include <random>

#include "catch_compat.h"
#include "routing/bias_controller.h"
#include "routing/gate.h"
#include "routing/losses.h"
#include "routing/stats.h"

using namespace tamoe::route;

namespace {

constexpr int kTokens = 2048, kFeatures = 16, kExperts = 16, kTopK = 2;

struct Problem {
  ExpertLayout layout = ExpertLayout::regular(4, 4, 2);
  MatrixRd x;  // tokens x features; feature 0 is a constant 1 (the gate's bias term)
  MatrixRd w;  // features x experts, skewed so that the start is far from any target
  Eigen::VectorXd target;
  GateOptions options;

  Problem() {
    std::mt19937 rng(21);
    std::normal_distribution<double> d(0.0, 1.0);
    x.resize(kTokens, kFeatures);
    for (int i = 0; i < x.size(); ++i) x.data()[i] = d(rng);
    x.col(0).setOnes();
    w.resize(kFeatures, kExperts);
    for (int i = 0; i < w.size(); ++i) w.data()[i] = 0.3 * d(rng);
    for (int e = 0; e < kExperts; ++e) w(0, e) = 1.5 * std::sin(1.7 * e);
    // A "ladder" plan row for rank 0: own rank, node peer, two remote ranks.
    target = target_from_plan({0.4, 0.3, 0.15, 0.15}, layout);
    options.k = kTopK;
    options.overflow = Overflow::dropless;
  }

  Eigen::VectorXd share(const MatrixRd& logits, const Eigen::VectorXf& bias) const {
    return assignment_share(select_topk(logits.cast<float>(), bias, layout, options).expert_count);
  }
};

// Runs gradient descent on loss(logits, f) and returns the final top-k share.
template <typename Loss>
Eigen::VectorXd train(Problem& pb, Loss loss, int steps, double lr) {
  for (int it = 0; it < steps; ++it) {
    const MatrixRd logits = pb.x * pb.w;
    const Eigen::VectorXd f = pb.share(logits, Eigen::VectorXf());
    const LossGrad g = loss(logits, f);
    pb.w -= lr * (pb.x.transpose() * g.grad);
  }
  return pb.share(pb.x * pb.w, Eigen::VectorXf());
}

}  // namespace

TEST_CASE("topology-aware loss drives the gate to the plan's target", "[routing][convergence]") {
  Problem pb;
  const Eigen::VectorXd uniform = Eigen::VectorXd::Constant(kExperts, 1.0 / kExperts);
  const double kl0 = kl_divergence(pb.share(pb.x * pb.w, Eigen::VectorXf()), pb.target);
  const Eigen::VectorXd f = train(
      pb, [&](const MatrixRd& z, const Eigen::VectorXd& fz) { return topo_loss(z, fz, pb.target); },
      400, 2.0);
  const double kl = kl_divergence(f, pb.target);
  INFO("KL(f || target) from " << kl0 << " to " << kl);
  CHECK(kl0 > 0.1);
  CHECK(kl <= 0.01);
  CHECK(kl_divergence(f, uniform) > 0.05);  // it really went somewhere else than uniform
}

TEST_CASE("Switch/GShard loss drives the gate to uniform", "[routing][convergence]") {
  Problem pb;
  const Eigen::VectorXd uniform = Eigen::VectorXd::Constant(kExperts, 1.0 / kExperts);
  const double kl0 = kl_divergence(pb.share(pb.x * pb.w, Eigen::VectorXf()), uniform);
  const Eigen::VectorXd f = train(
      pb, [](const MatrixRd& z, const Eigen::VectorXd& fz) { return switch_loss(z, fz); }, 400,
      2.0);
  const double kl = kl_divergence(f, uniform);
  INFO("KL(f || uniform) from " << kl0 << " to " << kl);
  CHECK(kl0 > 0.1);
  CHECK(kl <= 0.01);
}

TEST_CASE("bias controller brings a fixed gate to the target", "[routing][convergence]") {
  for (auto mode : {BiasUpdate::sign, BiasUpdate::proportional}) {
    Problem pb;
    const MatrixRd logits = pb.x * pb.w;
    BiasControllerOptions opt;
    opt.update = mode;
    opt.rate = mode == BiasUpdate::sign ? 0.01 : 5.0;
    BiasController ctl(pb.target, opt);
    const double kl0 = kl_divergence(pb.share(logits, ctl.bias()), pb.target);
    Eigen::VectorXd f;
    for (int it = 0; it < 400; ++it) {
      f = pb.share(logits, ctl.bias());
      ctl.update_share(f);
    }
    f = pb.share(logits, ctl.bias());
    const double kl = kl_divergence(f, pb.target);
    INFO("mode " << int(mode) << ": KL(f || target) from " << kl0 << " to " << kl);
    CHECK(kl0 > 0.1);
    CHECK(kl <= 0.01);
  }
}
