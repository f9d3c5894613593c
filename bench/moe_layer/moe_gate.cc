#include "bench/moe_layer/moe_gate.h"

#include <cmath>
#include <vector>

#include "routing/bias_controller.h"
#include "routing/stats.h"

namespace tamoe::bench::moe {

FeatureGate::FeatureGate(int64_t hidden, int num_experts, uint64_t model_seed) : hidden_(hidden) {
  std::mt19937_64 rng(model_seed);
  std::normal_distribution<float> d(0.0f, 1.0f / std::sqrt(static_cast<float>(hidden)));
  w_.resize(hidden, num_experts);
  for (Eigen::Index i = 0; i < w_.size(); ++i) w_.data()[i] = d(rng);
}

route::MatrixRf FeatureGate::features(int64_t tokens, uint64_t seed) const {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  route::MatrixRf x(tokens, hidden_);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = d(rng);
  return x;
}

BiasWarmup warm_up_bias(const FeatureGate& gate, const Eigen::VectorXd& target,
                        const route::ExpertLayout& layout, const route::GateOptions& options,
                        int64_t tokens, int steps, int batches, double rate, uint64_t seed) {
  std::vector<route::MatrixRf> logits;
  for (int b = 0; b < batches; ++b)
    logits.push_back(gate.logits(gate.features(tokens, seed + 7919 * static_cast<uint64_t>(b))));
  route::BiasControllerOptions o;
  o.update = route::BiasUpdate::proportional;
  o.rate = rate;
  route::BiasController ctl(target, o);
  // KL over all warm-up batches together, so one batch's noise does not decide.
  auto kl_all = [&](const Eigen::VectorXf& bias) {
    std::vector<int64_t> count(static_cast<size_t>(layout.num_experts()), 0);
    for (const auto& z : logits) {
      auto t = route::select_topk(z, bias, layout, options);
      for (size_t e = 0; e < count.size(); ++e) count[e] += t.expert_count[e];
    }
    return route::kl_divergence(route::assignment_share(count), target);
  };
  BiasWarmup w;
  w.kl_before = kl_all(Eigen::VectorXf());
  for (int s = 0; s < steps; ++s) {
    auto t = route::select_topk(logits[s % batches], ctl.bias(), layout, options);
    ctl.update(t.expert_count);
  }
  w.bias = ctl.bias();
  w.kl_after = kl_all(w.bias);
  w.steps = steps;
  return w;
}

}  // namespace tamoe::bench::moe
