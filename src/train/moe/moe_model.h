// The tamoe-train classifier: input projection (features -> H) + GELU, `layers` MoE feed-forward
// blocks (each LayerNorm(x + moe(x)), E experts per rank, expert parallel), a linear classifier.
// Dense parameters (projection, gates, norms, classifier) are replicated and trained data
// parallel; expert parameters live only on their rank.
#pragma once

#include <memory>
#include <vector>

#include "train/moe/moe_layer.h"
#include "train/param_registry.h"

namespace tamoe::train::moe {

struct ModelConfig {
  int in_features = 784;
  int classes = 10;
  int layers = 2;
  MoeConfig moe;  // hidden, ffn_hidden, gate, aux, target
};

class MoeClassifier {
 public:
  // Dense parameters come from Rng(seed) (the same on every rank), rank r's experts from a
  // stream derived from (seed, r).
  MoeClassifier(const ModelConfig& cfg, const route::ExpertLayout& layout, coll::AllToAll& a2a,
                uint64_t seed, int rank);

  // x: batch x in_features -> batch x classes logits. Collective (the MoE layers).
  MatrixRf forward(const MatrixRf& x);
  // Adds the gradients of (loss + aux_weight * sum of the layers' aux losses) to every parameter;
  // dlogits is d loss / d logits of the last forward. Collective.
  void backward(const MatrixRf& dlogits);
  // Sum over the layers of the last forward's unweighted aux loss.
  double aux_loss() const;

  // Every parameter ("input.weight", "moe0.gate.weight", "moe0.expert1.fc2.bias", "head.bias").
  ParamRegistry& params() { return all_; }
  // The replicated ones (everything but ".expert" parameters): what allreduce_grads averages.
  ParamRegistry& dense_params() { return dense_; }
  ParamRegistry& expert_params() { return experts_; }

  Linear<float> input;
  GELU<float> act;
  std::vector<std::unique_ptr<MoeLayer<float>>> layers;
  Linear<float> head;

 private:
  ParamRegistry all_, dense_, experts_;
};

}  // namespace tamoe::train::moe
