#include "train/moe/moe_model.h"

#include "runtime/error.h"

namespace tamoe::train::moe {

MoeClassifier::MoeClassifier(const ModelConfig& cfg, const route::ExpertLayout& layout,
                             coll::AllToAll& a2a, uint64_t seed, int rank) {
  Rng dense_rng(seed);
  // A separate stream per rank for the experts; the constant only decorrelates it from dense_rng.
  Rng expert_rng(seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(rank + 1)));
  input = Linear<float>(cfg.in_features, cfg.moe.hidden, dense_rng);
  for (int l = 0; l < cfg.layers; ++l)
    layers.push_back(
        std::make_unique<MoeLayer<float>>(cfg.moe, layout, a2a, dense_rng, expert_rng));
  head = Linear<float>(cfg.moe.hidden, cfg.classes, dense_rng, Init::xavier_uniform);

  all_.add_layer("input", input);
  for (size_t l = 0; l < layers.size(); ++l) {
    all_.add(str("moe", l), layers[l]->dense_params());
    all_.add(str("moe", l), layers[l]->expert_params());
  }
  all_.add_layer("head", head);
  auto is_expert = [](const std::string& n) { return n.find(".expert") != std::string::npos; };
  dense_ = all_.subset([&](const std::string& n) { return !is_expert(n); });
  experts_ = all_.subset(is_expert);
}

MatrixRf MoeClassifier::forward(const MatrixRf& x) {
  MatrixRf h = act.forward(input.forward(x));
  for (auto& l : layers) h = l->forward(h);
  return head.forward(h);
}

void MoeClassifier::backward(const MatrixRf& dlogits) {
  MatrixRf dh = head.backward(dlogits);
  for (size_t l = layers.size(); l-- > 0;) dh = layers[l]->backward(dh);
  input.backward(act.backward(dh));
}

double MoeClassifier::aux_loss() const {
  double s = 0;
  for (const auto& l : layers) s += l->aux_loss();
  return s;
}

}  // namespace tamoe::train::moe
