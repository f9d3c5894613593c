// CUDA gate kernels with host launchers: scoring + top-k (+ loss-free bias, node limit) with
// counting, capacity assignment (drop-lowest / reroute / dropless), counting, and the balance
// and z-loss forward + backward. Raw device pointers, sizes and a stream; every launcher is
// asynchronous on `stream` and returns the launch status.
//
// They reproduce the host gate of src/routing/gate.h: the same selection keys (logit + bias, one
// float addition), the same tie rules (lower expert / node index; drop order score desc, then
// token, then slot) and the same token-order reroute, so expert indices and drop masks are equal
// to the host's; scores and weights agree within float rounding (~1e-6 relative).
// Layouts: logits S x N row-major (token-major), per-copy arrays S x k row-major.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace tamoe::kernels {

constexpr int kGateMaxExperts = 1024;
constexpr int kGateMaxNodes = 64;

enum GateScore : int { kGateSoftmax = 0, kGateSigmoid = 1 };
// Which top-k kernel gate_topk runs. Auto picks the fastest that handles the parameters; a forced
// path (tests, benchmarks) that cannot handle them makes gate_topk return cudaErrorNotSupported.
enum GatePath : int { kGatePathAuto = 0, kGatePathLanes = 1, kGatePathGeneric = 2 };

enum GateOverflow : int { kGateDropLowest = 0, kGateReroute = 1, kGateDropless = 2 };

struct GateParams {
  int64_t tokens = 0;                 // S
  int experts = 0;                    // N = P * E, at most kGateMaxExperts
  int k = 1;                          // 1..N
  int score = kGateSoftmax;           // GateScore
  int experts_per_rank = 1;           // E: expert e lives on rank e / E
  int ranks = 1;                      // P
  const int* node_of_rank = nullptr;  // device, size P; needed only when max_nodes > 0
  int nodes = 1;                      // number of nodes, at most kGateMaxNodes when max_nodes > 0
  int max_nodes = 0;                  // node limit M (0 or >= nodes: off)
  int node_score_top = 2;             // g: group score = sum of a node's top-g keys
  // gate_topk only: zero expert_count on `stream` first (instead of adding to it). On sm_90 the
  // fast path's zeroing kernel and top-k kernel are launched programmatically (each launches
  // before the kernel ahead of it ends and waits for it before touching memory), which hides the
  // launch gaps a memset + kernel would leave per step. Eager calls without a non-finite report
  // skip the zeroing kernel: the top-k kernel zeroes the counts itself (a flag per count buffer,
  // kept by the library; see gate_topk_fast.cu). A captured CUDA graph keeps the zeroing kernel.
  bool zero_count = false;
  int path = kGatePathAuto;  // gate_topk only: GatePath

  // S tokens over N experts, E experts per rank on N / E ranks (E divides N), no node limit.
  static GateParams regular(int64_t tokens, int experts, int k, int experts_per_rank) {
    GateParams p;
    p.tokens = tokens;
    p.experts = experts;
    p.k = k;
    p.experts_per_rank = experts_per_rank;
    p.ranks = experts / experts_per_rank;
    return p;
  }
};

// Scores and top-k. In: logits (S x N), bias (N, or null). Out: expert_ids and scores (S x k,
// slot order = key descending), lse (S, softmax log-sum-exp of the logits; may be null),
// expert_count (N; counts are ADDED unless p.zero_count; may be null), first_nonfinite (device
// scalar; may be null): set to the smallest token*N + expert whose logit is NaN/Inf, or left at
// UINT64_MAX (the launcher initialises it).
cudaError_t gate_topk(const GateParams& p, const float* logits, const float* bias,
                      int32_t* expert_ids, float* scores, float* lse, int32_t* expert_count,
                      unsigned long long* first_nonfinite, cudaStream_t stream);

// Counts kept copies (ids >= 0) per expert and per destination rank. Counts are ADDED (zero
// them first); either output may be null.
cudaError_t gate_count(const int32_t* expert_ids, int64_t copies, int experts, int experts_per_rank,
                       int32_t* expert_count, int32_t* rank_count, cudaStream_t stream);

struct CapacityParams {
  int overflow = kGateDropLowest;     // GateOverflow
  bool normalize = false;             // kept weights of a token sum to 1
  const int64_t* capacity = nullptr;  // device, size P (ignored for dropless)
};

// Device scratch bytes gate_capacity needs for these sizes.
size_t gate_capacity_workspace_bytes(const GateParams& p);

// Applies capacity to a top-k selection. In: logits and bias (N or null) are those of gate_topk
// (reroute needs the other experts' keys), topk_ids / topk_scores from gate_topk. Out (S x k):
// expert_ids (-1 where dropped), weights (0 where dropped), dropped (1 where dropped);
// num_rerouted (device scalar, set; may be null). Reroute runs on one warp in token order.
cudaError_t gate_capacity(const GateParams& p, const CapacityParams& c, const float* logits,
                          const float* bias, const int32_t* topk_ids, const float* topk_scores,
                          int32_t* expert_ids, float* weights, uint8_t* dropped,
                          int32_t* num_rerouted, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream);

// w_e of the balance loss from top-k counts: Switch/GShard (target null) w_e = N * f_e,
// topology-aware w_e = f_e / target_e, with f_e = count_e / copies.
cudaError_t balance_weights(const int32_t* expert_count, int experts, int64_t copies,
                            const float* target, float* w, cudaStream_t stream);

// loss = sum_e w_e p_e + z_weight * mean_t lse_t^2 with p_e = mean_t softmax(logits_t)_e.
// In: logits (S x N), w (N, or null for none). Out: loss (device scalar), grad (S x N, d loss /
// d logits, written not added; may be null). workspace: S floats. Deterministic (no atomics).
cudaError_t aux_loss(const float* logits, int64_t tokens, int experts, const float* w,
                     float z_weight, float* loss, float* grad, float* workspace,
                     cudaStream_t stream);

}  // namespace tamoe::kernels
