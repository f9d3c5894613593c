#include "train/optimizer.h"

#include <cmath>

#include "runtime/error.h"

namespace tamoe::train {

Optimizer::Optimizer(const ParamRegistry& params, double lr) : params_(params), lr_(lr) {
  set_lr(lr);
}

void Optimizer::set_steps(int64_t steps) {
  TAMOE_CHECK_ARG(steps >= 0, "Optimizer::set_steps", "steps >= 0", std::to_string(steps));
  steps_ = steps;
}

void Optimizer::set_lr(double lr) {
  TAMOE_CHECK_ARG(std::isfinite(lr) && lr >= 0, "Optimizer::set_lr", "a finite lr >= 0",
                  std::to_string(lr));
  lr_ = lr;
}

Adam::Adam(const ParamRegistry& params, const AdamOptions& options)
    : Optimizer(params, options.lr), options_(options) {
  TAMOE_CHECK_ARG(options.beta1 >= 0 && options.beta1 < 1, "Adam", "beta1 in [0, 1)",
                  std::to_string(options.beta1));
  TAMOE_CHECK_ARG(options.beta2 >= 0 && options.beta2 < 1, "Adam", "beta2 in [0, 1)",
                  std::to_string(options.beta2));
  TAMOE_CHECK_ARG(options.eps > 0, "Adam", "eps > 0", std::to_string(options.eps));
  TAMOE_CHECK_ARG(options.weight_decay >= 0, "Adam", "weight_decay >= 0",
                  std::to_string(options.weight_decay));
  for (const auto& e : params_.entries()) {
    m_.push_back(MatrixRf::Zero(e.param->value.rows(), e.param->value.cols()));
    v_.push_back(MatrixRf::Zero(e.param->value.rows(), e.param->value.cols()));
  }
}

void Adam::step() {
  const double t = static_cast<double>(steps_ + 1);
  const auto b1 = static_cast<float>(options_.beta1);
  const auto b2 = static_cast<float>(options_.beta2);
  const auto step_size = static_cast<float>(lr_ / (1.0 - std::pow(options_.beta1, t)));
  const auto inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(options_.beta2, t)));
  const auto eps = static_cast<float>(options_.eps);
  const auto decay = static_cast<float>(1.0 - lr_ * options_.weight_decay);
  const auto& entries = params_.entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    auto p = entries[i].param->value.array();
    const auto g = entries[i].param->grad.array();
    auto m = m_[i].array();
    auto v = v_[i].array();
    if (options_.weight_decay != 0) p *= decay;
    m = b1 * m + (1.0f - b1) * g;
    v = b2 * v + (1.0f - b2) * g.square();
    p -= step_size * m / (v.sqrt() * inv_sqrt_bc2 + eps);
  }
  ++steps_;
}

std::vector<NamedTensor> Adam::state() {
  std::vector<NamedTensor> out;
  const auto& entries = params_.entries();
  for (size_t i = 0; i < entries.size(); ++i) out.push_back({"m/" + entries[i].name, &m_[i]});
  for (size_t i = 0; i < entries.size(); ++i) out.push_back({"v/" + entries[i].name, &v_[i]});
  return out;
}

nlohmann::json Adam::options_json() const {
  return {{"lr", lr_},
          {"beta1", options_.beta1},
          {"beta2", options_.beta2},
          {"eps", options_.eps},
          {"weight_decay", options_.weight_decay}};
}

Sgd::Sgd(const ParamRegistry& params, const SgdOptions& options)
    : Optimizer(params, options.lr), options_(options) {
  TAMOE_CHECK_ARG(options.momentum >= 0 && options.momentum < 1, "Sgd", "momentum in [0, 1)",
                  std::to_string(options.momentum));
  TAMOE_CHECK_ARG(options.weight_decay >= 0, "Sgd", "weight_decay >= 0",
                  std::to_string(options.weight_decay));
  if (options.momentum > 0)
    for (const auto& e : params_.entries())
      buf_.push_back(MatrixRf::Zero(e.param->value.rows(), e.param->value.cols()));
}

void Sgd::step() {
  const auto lr = static_cast<float>(lr_);
  const auto wd = static_cast<float>(options_.weight_decay);
  const auto mu = static_cast<float>(options_.momentum);
  const auto& entries = params_.entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    auto p = entries[i].param->value.array();
    const MatrixRf g = (entries[i].param->grad.array() + wd * p).matrix();
    if (buf_.empty()) {
      p -= lr * g.array();
      continue;
    }
    if (steps_ == 0)
      buf_[i] = g;
    else
      buf_[i].array() = mu * buf_[i].array() + g.array();
    p -= lr * buf_[i].array();
  }
  ++steps_;
}

std::vector<NamedTensor> Sgd::state() {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < buf_.size(); ++i)
    out.push_back({"momentum/" + params_.entries()[i].name, &buf_[i]});
  return out;
}

nlohmann::json Sgd::options_json() const {
  return {{"lr", lr_}, {"momentum", options_.momentum}, {"weight_decay", options_.weight_decay}};
}

}  // namespace tamoe::train
