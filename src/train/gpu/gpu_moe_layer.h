// One MoE feed-forward block on the GPU, the device twin of train::moe::MoeLayer (same math, see
// moe_layer.h): y = LayerNorm(x + sum_i w[t,i] * expert_{e(t,i)}(x[t])).
//
//   gate: logits = x Wg + bg (cuBLAS), kernels::gate_topk (softmax, top-k, loss-free bias, node
//         limit) and kernels::gate_capacity (capacity per destination rank, drop / reroute /
//         dropless); the combine weight is the chosen expert's softmax probability (not
//         renormalized), as on the host; the balance loss from kernels::balance_weights +
//         kernels::aux_loss (Switch: w = N f, TA: w = f / t);
//   tokens: coll::DeviceDispatch (k slots per token, NCCL all-to-all); the experts run on the
//         [local expert][source rank][token] block it delivers, one cuBLAS GEMM pair per expert;
//   backward: LayerNorm, combine_backward (weight gradients into the gate softmax), experts,
//         dispatch_backward, gate (+ aux_weight * d aux / d logits).
//
// Parameters live in the model's flat device buffers; the layer holds pointers. The routing of
// the last forward is copied to the host (a few hundred bytes) for the trainer's statistics and
// the ta-bias controller. Collective: forward/backward on every rank of the all-to-all's group.
#pragma once

#include <Eigen/Core>
#include <memory>
#include <vector>

#include "collectives/dispatch_device.h"
#include "routing/gate.h"
#include "train/gpu/device_ops.h"
#include "train/moe/moe_layer.h"

namespace tamoe::train::gpu {

// A Linear's weight (in x out), bias (out) and their gradients, in device memory.
struct LinearRef {
  float* w = nullptr;
  float* b = nullptr;
  float* dw = nullptr;
  float* db = nullptr;
};

struct NormRef {
  float* gamma = nullptr;
  float* beta = nullptr;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
};

struct MoeLayerRefs {
  LinearRef gate;
  NormRef norm;
  std::vector<LinearRef> fc1, fc2;  // per local expert
};

class GpuMoeLayer {
 public:
  // Phases of PhaseTimes, in the order of its fields.
  enum Phase : int { kGate = 0, kPermute, kA2a, kExperts, kCombine, kPhases };

  GpuMoeLayer(const moe::MoeConfig& cfg, const route::ExpertLayout& layout,
              coll::DeviceAllToAll& a2a, const Blas& blas, MoeLayerRefs refs);

  // x: S x H device rows (kept until backward). Returns S x H, valid until the next forward.
  const float* forward(const float* x, int64_t S);
  // dy: S x H of the last forward. Returns dx (S x H), valid until the next backward.
  const float* backward(const float* dy);

  double aux_loss() const { return aux_value_; }
  const route::Routing& routing() const { return routing_; }
  const std::vector<int64_t>& topk_counts() const { return topk_counts_; }
  void set_bias(const Eigen::VectorXf& bias);
  const moe::MoeConfig& config() const { return cfg_; }
  const route::ExpertLayout& layout() const { return layout_; }
  // Adds the phase times of the calls since the last collect (waits for the stream).
  void collect_times(moe::PhaseTimes& t);

 private:
  void route_gate(int64_t S);
  void copy_routing_to_host(int64_t S);

  moe::MoeConfig cfg_;
  route::ExpertLayout layout_;
  coll::DeviceAllToAll* a2a_;
  const Blas* blas_;
  cudaStream_t stream_;
  MoeLayerRefs p_;
  int N_ = 0, E_ = 0, P_ = 1, k_ = 1, H_ = 0, F_ = 0;
  bool has_bias_ = false;
  PhaseClock clock_;

  // Kept from forward for backward.
  std::unique_ptr<coll::DeviceDispatch> handle_;
  const float* x_ = nullptr;
  int64_t S_ = 0, R_ = 0;
  std::vector<int64_t> block_off_, block_rows_;
  double aux_value_ = 0;
  route::Routing routing_;
  std::vector<int64_t> topk_counts_;
  std::vector<int64_t> cap_host_;
  int64_t cap_tokens_ = -1;

  // Device buffers (grown as needed).
  coll::DeviceBuffer bias_, target_, node_of_rank_, capacity_;
  coll::DeviceBuffer logits_, lse_, topk_ids_, topk_scores_, topk_count_, ids_, weights_, dropped_,
      rerouted_, nonfinite_, cap_work_, balance_w_, aux_loss_, aux_grad_, aux_work_;
  coll::DeviceBuffer recv_, h1_, a1_, y_, comb_, z_, out_, xhat_, rstd_;
  coll::DeviceBuffer dz_, gy_, da1_, drecv_, dx_, dw_, dlogits_;
  PinnedBuffer host_;  // topk counts, ids, rerouted, aux loss of the last forward
};

}  // namespace tamoe::train::gpu
