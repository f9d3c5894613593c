// The gate of the MoE-layer benchmark: random token features x (S x H, also the hidden states
// that are dispatched), a linear gate Wg (H x N) shared by all ranks, logits = x Wg, and per rank
// a loss-free bias (src/routing/bias_controller.h) warmed up toward a target distribution so the
// gate's top-k realizes it (uniform, or the TA plan's t_i(e) = X_{i,rank(e)} / E).
#pragma once

#include <cstdint>
#include <random>

#include "routing/gate.h"

namespace tamoe::bench::moe {

class FeatureGate {
 public:
  // Wg ~ N(0, 1/H) from model_seed (the same on every rank: one model).
  FeatureGate(int64_t hidden, int num_experts, uint64_t model_seed);

  // S x H features ~ N(0, 1) from `seed` (distinct per rank and step).
  route::MatrixRf features(int64_t tokens, uint64_t seed) const;
  route::MatrixRf logits(const route::MatrixRf& x) const { return x * w_; }
  int64_t hidden() const { return hidden_; }

 private:
  int64_t hidden_;
  route::MatrixRf w_;
};

struct BiasWarmup {
  Eigen::VectorXf bias;  // N, for select_topk
  double kl_before = 0;  // KL(top-k share || target) without bias, on the warm-up batches
  double kl_after = 0;   // ... with the final bias
  int steps = 0;
};

// Loss-free bias controller (proportional, `rate` per unit share) run for `steps` steps over
// `batches` fresh feature batches of `tokens` tokens (cycled), counting top-k assignments before
// capacity. Deterministic for a seed.
BiasWarmup warm_up_bias(const FeatureGate& gate, const Eigen::VectorXd& target,
                        const route::ExpertLayout& layout, const route::GateOptions& options,
                        int64_t tokens, int steps, int batches, double rate, uint64_t seed);

}  // namespace tamoe::bench::moe
