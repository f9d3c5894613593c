// Scoring + top-k (+ bias, node limit) with per-expert counting, and the plain counting kernel.
#include "kernels/gate_device.cuh"
#include "kernels/gate_topk_fast.cuh"

namespace tamoe::kernels {

namespace {

using detail::kFull;

constexpr int kWarpsPerBlock = 8;

// (key, expert) packed so that one unsigned max picks the larger key and, on equal keys, the lower
// expert: the key's bits mapped to an order-preserving unsigned (with -0 folded into +0, which
// the host treats as equal), the expert as 0xffffffff - e. 0 means "no candidate".
__device__ __forceinline__ unsigned long long pack(float key, int e) {
  const unsigned u = __float_as_uint(key + 0.0f);
  const unsigned ordered = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return static_cast<unsigned long long>(ordered) << 32 | (0xffffffffu - static_cast<unsigned>(e));
}

template <int VPT, int G, bool LIMIT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    topk_kernel(GateParams p, const float* __restrict__ logits, const float* __restrict__ bias,
                int32_t* __restrict__ ids, float* __restrict__ scores, float* __restrict__ lse_out,
                int32_t* __restrict__ count, unsigned long long* nonfinite) {
  constexpr int kTokensPerWarp = 32 / G;
  extern __shared__ int32_t hist[];
  const int warp_lane = threadIdx.x & 31;
  const int lane = warp_lane % G;           // index inside the token's group
  const int group_base = warp_lane - lane;  // first lane of the group
  const int group = warp_lane / G;
  const int warp = threadIdx.x >> 5;
  const int n = p.experts;
  if (count) {
    for (int e = threadIdx.x; e < n; e += blockDim.x) hist[e] = 0;
    __syncthreads();
  }
  const int64_t stride = int64_t(gridDim.x) * kWarpsPerBlock * kTokensPerWarp;
  // The loop bound is per warp so that every lane takes part in every shuffle.
  for (int64_t t0 = (int64_t(blockIdx.x) * kWarpsPerBlock + warp) * kTokensPerWarp; t0 < p.tokens;
       t0 += stride) {
    const int64_t t = t0 + group;
    const bool live = t < p.tokens;
    const float* row = logits + t * n;
    float z[VPT];
    unsigned long long cand[VPT];
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < VPT; ++i) {
      const int e = lane + G * i;
      const bool valid = live && e < n;
      z[i] = valid ? __ldg(row + e) : -INFINITY;
      mx = fmaxf(mx, z[i]);
    }
#pragma unroll
    for (int i = 0; i < VPT; ++i) {
      const int e = lane + G * i;
      const bool valid = live && e < n;
      if (valid && nonfinite && !isfinite(z[i]))
        atomicMin(nonfinite, static_cast<unsigned long long>(t * n + e));
      cand[i] = valid ? pack(bias ? z[i] + __ldg(bias + e) : z[i], e) : 0ull;
    }
    if constexpr (LIMIT) {
      float key[VPT];
      int node[VPT];
#pragma unroll
      for (int i = 0; i < VPT; ++i) {
        const int e = lane + G * i;
        const bool valid = live && e < n;
        key[i] = valid && bias ? z[i] + __ldg(bias + e) : z[i];
        node[i] = valid ? __ldg(p.node_of_rank + e / p.experts_per_rank) : -1;
      }
      const uint64_t ok = detail::allowed_nodes<VPT, G>(p, key, node, lane);
#pragma unroll
      for (int i = 0; i < VPT; ++i)
        if (node[i] < 0 || !(ok >> node[i] & 1ull)) cand[i] = 0ull;
    }
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, off));
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < VPT; ++i) sum += expf(z[i] - mx);  // exp(-inf) = 0 for padding
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(kFull, sum, off);
    int my_id = 0;
    float my_score = 0.0f;
    for (int slot = 0; slot < p.k; ++slot) {
      unsigned long long best = 0ull;
#pragma unroll
      for (int i = 0; i < VPT; ++i) best = cand[i] > best ? cand[i] : best;
#pragma unroll
      for (int off = G / 2; off > 0; off >>= 1) {
        const unsigned long long o = __shfl_xor_sync(kFull, best, off);
        best = o > best ? o : best;
      }
      float sc = 0.0f;
#pragma unroll
      for (int i = 0; i < VPT; ++i)
        if (best != 0ull && cand[i] == best) {
          cand[i] = 0ull;
          sc = p.score == kGateSoftmax ? expf(z[i] - mx) / sum : 1.0f / (1.0f + expf(-z[i]));
        }
      const int e = static_cast<int>(0xffffffffu - static_cast<unsigned>(best));
      sc = __shfl_sync(kFull, sc, group_base + (best == 0ull ? 0 : e % G));
      if (lane == slot % G) {
        my_id = e;
        my_score = sc;
      }
      if (slot % G == G - 1 || slot == p.k - 1) {
        const int base = slot - slot % G;
        if (live && lane <= slot % G) {
          ids[t * p.k + base + lane] = my_id;
          scores[t * p.k + base + lane] = my_score;
          if (count) atomicAdd(&hist[my_id], 1);
        }
      }
    }
    if (live && lse_out && lane == 0) lse_out[t] = mx + logf(sum);
  }
  if (count) {
    __syncthreads();
    for (int e = threadIdx.x; e < n; e += blockDim.x)
      if (hist[e]) atomicAdd(&count[e], hist[e]);
  }
}

__global__ void count_kernel(const int32_t* __restrict__ ids, int64_t copies, int experts,
                             int experts_per_rank, int32_t* expert_count, int32_t* rank_count) {
  extern __shared__ int32_t hist[];  // experts + ranks
  const int ranks = experts / experts_per_rank;
  for (int i = threadIdx.x; i < experts + ranks; i += blockDim.x) hist[i] = 0;
  __syncthreads();
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < copies;
       c += int64_t(gridDim.x) * blockDim.x) {
    const int e = ids[c];
    if (e < 0) continue;
    atomicAdd(&hist[e], 1);
    atomicAdd(&hist[experts + e / experts_per_rank], 1);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < experts; i += blockDim.x)
    if (expert_count && hist[i]) atomicAdd(&expert_count[i], hist[i]);
  for (int i = threadIdx.x; i < ranks; i += blockDim.x)
    if (rank_count && hist[experts + i]) atomicAdd(&rank_count[i], hist[experts + i]);
}

int grid_for(int64_t items, int per_block) {
  int dev = 0, sms = 132;
  if (cudaGetDevice(&dev) == cudaSuccess)
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const int64_t want = (items + per_block - 1) / per_block;
  const int64_t cap = int64_t(sms) * 16;
  return static_cast<int>(want < 1 ? 1 : (want < cap ? want : cap));
}

bool params_ok(const GateParams& p) {
  if (p.tokens < 0 || p.experts < 1 || p.experts > kGateMaxExperts || p.k < 1 || p.k > p.experts ||
      p.experts_per_rank < 1 || p.experts % p.experts_per_rank != 0)
    return false;
  if (p.max_nodes > 0 && p.max_nodes < p.nodes &&
      (p.nodes > kGateMaxNodes || !p.node_of_rank || p.node_score_top < 1))
    return false;
  return true;
}

}  // namespace

cudaError_t gate_topk(const GateParams& p, const float* logits, const float* bias,
                      int32_t* expert_ids, float* scores, float* lse, int32_t* expert_count,
                      unsigned long long* first_nonfinite, cudaStream_t stream) {
  if (!params_ok(p)) return cudaErrorInvalidValue;
  const bool lanes = detail::topk_fast_supported(p, logits, bias);
  if (p.path == kGatePathLanes || (p.path == kGatePathAuto && lanes)) {
    if (!lanes) return cudaErrorNotSupported;
    return detail::topk_fast(p, logits, bias, expert_ids, scores, lse, expert_count,
                             first_nonfinite, stream);
  }
  if (p.path != kGatePathAuto && p.path != kGatePathGeneric) return cudaErrorInvalidValue;
  // General path: node limit, k > 8, N not a multiple of 4 or unaligned pointers.
  if (p.zero_count && expert_count) {
    const cudaError_t rc = cudaMemsetAsync(expert_count, 0, sizeof(int32_t) * p.experts, stream);
    if (rc != cudaSuccess) return rc;
  }
  if (first_nonfinite) {
    const cudaError_t rc = cudaMemsetAsync(first_nonfinite, 0xff, sizeof(*first_nonfinite), stream);
    if (rc != cudaSuccess) return rc;
  }
  if (p.tokens == 0) return cudaSuccess;
  const size_t shmem = expert_count ? sizeof(int32_t) * p.experts : 0;
  const dim3 block(kWarpsPerBlock * 32);
  // Lanes per token: small expert counts share a warp between 4 (G=8) or 2 (G=16) tokens.
  const int g = p.experts <= 64 ? 8 : (p.experts <= 128 ? 16 : 32);
  const int vpt = (p.experts + g - 1) / g;
  const int grid = grid_for(p.tokens, kWarpsPerBlock * (32 / g));
  const bool limit = p.max_nodes > 0 && p.max_nodes < p.nodes;
#define TAMOE_TOPK(V, G)                                                                           \
  do {                                                                                             \
    if (limit)                                                                                     \
      topk_kernel<V, G, true><<<grid, block, shmem, stream>>>(p, logits, bias, expert_ids, scores, \
                                                              lse, expert_count, first_nonfinite); \
    else                                                                                           \
      topk_kernel<V, G, false><<<grid, block, shmem, stream>>>(                                    \
          p, logits, bias, expert_ids, scores, lse, expert_count, first_nonfinite);                \
  } while (0)
  if (g == 8) {
    if (vpt <= 1)
      TAMOE_TOPK(1, 8);
    else if (vpt <= 2)
      TAMOE_TOPK(2, 8);
    else if (vpt <= 4)
      TAMOE_TOPK(4, 8);
    else
      TAMOE_TOPK(8, 8);
  } else if (g == 16) {
    TAMOE_TOPK(8, 16);
  } else if (vpt <= 8) {
    TAMOE_TOPK(8, 32);
  } else if (vpt <= 16) {
    TAMOE_TOPK(16, 32);
  } else {
    TAMOE_TOPK(32, 32);
  }
#undef TAMOE_TOPK
  return cudaGetLastError();
}

cudaError_t gate_count(const int32_t* expert_ids, int64_t copies, int experts, int experts_per_rank,
                       int32_t* expert_count, int32_t* rank_count, cudaStream_t stream) {
  if (experts < 1 || experts_per_rank < 1 || experts % experts_per_rank != 0 || copies < 0)
    return cudaErrorInvalidValue;
  if (copies == 0) return cudaSuccess;
  const size_t shmem = sizeof(int32_t) * (experts + experts / experts_per_rank);
  count_kernel<<<grid_for(copies, 256), 256, shmem, stream>>>(
      expert_ids, copies, experts, experts_per_rank, expert_count, rank_count);
  return cudaGetLastError();
}

}  // namespace tamoe::kernels
