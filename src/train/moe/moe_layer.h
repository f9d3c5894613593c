// One expert-parallel MoE feed-forward block on the host: y = LayerNorm(x + moe(x)) with
//   moe(x)[t] = sum_i w[t,i] * expert_{e(t,i)}(x[t]),  w[t,i] = softmax(x Wg + bg)[t, e(t,i)]
// where e(t,i) comes from the routing layer (top-k, loss-free bias, node limit, capacity) and the
// tokens travel to the rank owning their expert through the collectives' dispatch/combine.
//
// Each (token, slot) pair is dispatched as its own row (k = 1 in the dispatch shape, S*k rows in
// (token, slot) order, which is the same send layout the k-slot dispatch uses) and combined with
// unit weights; the gate weights are applied here, in the layer's precision. That keeps the whole
// layer in T (the dispatch's combine weights are float), so the double instantiation can be
// checked against finite differences, and gives the per-slot gradients without extra traffic.
//
// Backward covers the LayerNorm, the residual, the combine weights (into the gate softmax), the
// experts, the dispatch and the gate; the auxiliary balance loss adds aux_weight * dL_aux/dlogits.
// Collective: forward and backward must be called by every rank of the all-to-all's group.
#pragma once

#include <Eigen/Core>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collectives/dispatch.h"
#include "routing/gate.h"
#include "train/layers.h"

namespace tamoe::train::moe {

enum class AuxKind { none, switch_loss, ta_loss, ta_bias };
const char* aux_name(AuxKind a);
// "none", "switch", "ta", "ta-bias"; throws naming `where` otherwise.
AuxKind parse_aux(const std::string& s, const std::string& where);

struct MoeConfig {
  int hidden = 64;          // H, the model width
  int ffn_hidden = 128;     // inner width of each expert
  route::GateOptions gate;  // k, capacity, overflow, node limit (k lives here)
  AuxKind aux = AuxKind::switch_loss;
  double aux_weight = 0.01;
  // This rank's target over the N global experts (ta / ta-bias, and the stats' KL); empty means
  // uniform.
  Eigen::VectorXd target;
  // This rank's row of the dispatch plan (size P): when set, the capacity per destination is
  // ceil(capacity_factor * S * k * X_ij) for each forward's S (plan-aware capacity); when empty,
  // gate.capacity_per_rank / the uniform capacity applies.
  std::vector<double> plan_row;
};

// Seconds spent per phase, accumulated over calls (forward and backward).
struct PhaseTimes {
  double gate = 0, permute = 0, a2a = 0, experts = 0, combine = 0;
  PhaseTimes& operator+=(const PhaseTimes& o);
};

template <typename T>
class MoeLayer {
 public:
  // dense_rng draws the replicated parameters (gate, norm: identical on every rank when seeded
  // identically), expert_rng this rank's experts.
  MoeLayer(const MoeConfig& cfg, const route::ExpertLayout& layout, coll::AllToAll& a2a,
           Rng& dense_rng, Rng& expert_rng);

  // x: S x H on this rank (S may differ between ranks, 0 allowed).
  Matrix<T> forward(const Matrix<T>& x);
  Matrix<T> backward(const Matrix<T>& dy);

  // "gate.weight", "gate.bias", "norm.gamma", "norm.beta" (replicated, data parallel).
  std::vector<NamedParam<T>> dense_params();
  // "expert<e>.fc1.weight", ... for the local experts (expert parallel).
  std::vector<NamedParam<T>> expert_params();

  // The unweighted aux loss of the last forward (0 for none / ta-bias).
  double aux_loss() const { return aux_value_; }
  const route::Routing& routing() const { return routing_; }
  // Top-k assignment counts before capacity (size N), what the bias controller follows.
  const std::vector<int64_t>& topk_counts() const { return topk_counts_; }
  // The selection bias (ta-bias); empty: none.
  void set_bias(const Eigen::VectorXf& bias) { bias_ = bias; }
  const MoeConfig& config() const { return cfg_; }
  const route::ExpertLayout& layout() const { return layout_; }
  PhaseTimes& times() { return times_; }

  Linear<T> gate;
  std::vector<ExpertFFN<T>> experts;
  LayerNorm<T> norm;

 private:
  MoeConfig cfg_;
  route::ExpertLayout layout_;
  coll::AllToAll* a2a_;
  Eigen::VectorXf bias_;
  PhaseTimes times_;
  // Kept from forward for backward.
  std::optional<coll::HostDispatch> handle_;
  Matrix<T> probs_;           // S x N softmax of the gate logits
  Matrix<T> w_;               // S x k combine weights (0 where dropped)
  Matrix<T> slot_out_;        // (S*k) x H expert output per slot (0 where dropped)
  route::MatrixRd aux_grad_;  // S x N, d aux / d logits
  route::Routing routing_;
  std::vector<int64_t> topk_counts_;
  std::vector<int64_t> block_off_, block_rows_;  // per local expert, rows in the expert side
  double aux_value_ = 0;
};

}  // namespace tamoe::train::moe
