#include "routing/bias_controller.h"

#include <cmath>

#include "routing/gate.h"
#include "routing/losses.h"
#include "runtime/error.h"

namespace tamoe::route {

BiasController::BiasController(const Eigen::VectorXd& target, const BiasControllerOptions& options)
    : options_(options) {
  TAMOE_CHECK_ARG(options.rate >= 0 && std::isfinite(options.rate), "BiasControllerOptions.rate",
                  "a finite value >= 0", str(options.rate));
  set_target(target);
  bias_ = Eigen::VectorXd::Zero(target.size());
  bias_f_ = Eigen::VectorXf::Zero(target.size());
}

void BiasController::set_target(const Eigen::VectorXd& target) {
  check_target(target, static_cast<int>(target.size()), "BiasController");
  TAMOE_CHECK_ARG(bias_.size() == 0 || bias_.size() == target.size(), "BiasController: target",
                  str("size ", bias_.size()), str("size ", target.size()));
  target_ = target;
}

void BiasController::set_bias(const Eigen::VectorXd& bias) {
  TAMOE_CHECK_ARG(bias.size() == target_.size() && bias.allFinite(), "BiasController::set_bias",
                  str("size ", target_.size(), ", finite"), str("size ", bias.size()));
  bias_ = bias;
  bias_f_ = bias_.cast<float>();
}

void BiasController::update(const std::vector<int64_t>& count) {
  TAMOE_CHECK_ARG(static_cast<Eigen::Index>(count.size()) == target_.size(),
                  "BiasController::update: expert_count", str("size ", target_.size()),
                  str("size ", count.size()));
  int64_t total = 0;
  for (int64_t c : count) total += c;
  if (total == 0) return;
  update_share(assignment_share(count));
}

void BiasController::update_share(const Eigen::VectorXd& share) {
  TAMOE_CHECK_ARG(share.size() == target_.size(), "BiasController::update_share: share",
                  str("size ", target_.size()), str("size ", share.size()));
  const Eigen::VectorXd err = target_ - share;
  if (options_.update == BiasUpdate::sign)
    bias_ += options_.rate * err.unaryExpr([](double v) { return double((v > 0) - (v < 0)); });
  else
    bias_ += options_.rate * err;
  if (options_.center) bias_.array() -= bias_.mean();
  bias_f_ = bias_.cast<float>();
  ++steps_;
}

}  // namespace tamoe::route
