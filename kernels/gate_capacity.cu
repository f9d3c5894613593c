// Capacity assignment: drop-lowest (a stable radix sort of (destination, score desc)), reroute
// (one warp walking the tokens in order, as the host does) and dropless.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/gate_device.cuh"

namespace tamoe::kernels {

namespace {

using detail::Best;
using detail::better;
using detail::group_best;
using detail::kFull;

constexpr size_t kAlign = 256;
size_t align_up(size_t b) {
  return (b + kAlign - 1) / kAlign * kAlign;
}

int rank_bits(int ranks) {
  int b = 1;
  while ((1 << b) < ranks) ++b;
  return b;
}

struct Workspace {
  uint64_t* keys_in;
  uint64_t* keys_out;
  int32_t* vals_in;
  int32_t* vals_out;
  int64_t* start;
  void* cub_temp;
  size_t cub_bytes;
  size_t total;
};

Workspace carve(const GateParams& p, void* base) {
  const size_t n = static_cast<size_t>(p.tokens) * p.k;
  Workspace w{};
  size_t cub_bytes = 0;
  cub::DeviceRadixSort::SortPairs(
      nullptr, cub_bytes, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), static_cast<int64_t>(n),
      0, 32 + rank_bits(p.ranks));
  char* c = static_cast<char*>(base);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    void* ptr = c ? c + off : nullptr;
    off += align_up(bytes);
    return ptr;
  };
  w.keys_in = static_cast<uint64_t*>(take(n * 8));
  w.keys_out = static_cast<uint64_t*>(take(n * 8));
  w.vals_in = static_cast<int32_t*>(take(n * 4));
  w.vals_out = static_cast<int32_t*>(take(n * 4));
  w.start = static_cast<int64_t*>(take(static_cast<size_t>(p.ranks) * 8));
  w.cub_temp = take(cub_bytes);
  w.cub_bytes = cub_bytes;
  w.total = off;
  return w;
}

// Sort key: destination rank in the high word, then the score descending (scores are >= +0, so
// the bit pattern orders like the value); the stable sort keeps token/slot order for ties.
__global__ void make_keys(const int32_t* __restrict__ ids, const float* __restrict__ scores,
                          int64_t n, int experts_per_rank, uint64_t* keys, int32_t* vals) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < n;
       c += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t dest = static_cast<uint64_t>(ids[c] / experts_per_rank);
    keys[c] = dest << 32 | static_cast<uint32_t>(~__float_as_uint(scores[c]));
    vals[c] = static_cast<int32_t>(c);
  }
}

__global__ void segment_starts(const uint64_t* __restrict__ keys, int64_t n, int64_t* start) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t d = keys[i] >> 32;
    if (i == 0 || (keys[i - 1] >> 32) != d) start[d] = i;
  }
}

__global__ void mark_over_capacity(const uint64_t* __restrict__ keys,
                                   const int32_t* __restrict__ vals, int64_t n,
                                   const int64_t* __restrict__ start,
                                   const int64_t* __restrict__ capacity, uint8_t* dropped) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t d = keys[i] >> 32;
    dropped[vals[i]] = (i - start[d]) >= capacity[d] ? 1 : 0;
  }
}

// Per token: final ids and weights from the selection and the drop mask.
__global__ void finalize(const int32_t* __restrict__ topk_ids, const float* __restrict__ scores,
                         int64_t tokens, int k, bool normalize, const uint8_t* __restrict__ dropped,
                         int32_t* ids, float* weights) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < tokens;
       t += int64_t(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) {
      const int64_t c = t * k + j;
      ids[c] = dropped[c] ? -1 : topk_ids[c];
      weights[c] = dropped[c] ? 0.0f : scores[c];
      sum += weights[c];
    }
    if (normalize && sum > 0.0f)
      for (int j = 0; j < k; ++j) weights[t * k + j] /= sum;
  }
}

// One warp, tokens in order: the host's reroute rule (see src/routing/gate.h).
template <int VPT>
__global__ void reroute_kernel(GateParams p, bool normalize, const int64_t* __restrict__ capacity,
                               const float* __restrict__ logits, const float* __restrict__ bias,
                               const int32_t* __restrict__ topk_ids,
                               const float* __restrict__ topk_scores, int32_t* ids, float* weights,
                               uint8_t* dropped, int32_t* num_rerouted) {
  extern __shared__ long long room[];
  const int lane = threadIdx.x;
  const int n = p.experts;
  const int ep = p.experts_per_rank;
  for (int r = lane; r < p.ranks; r += 32) room[r] = capacity[r];
  __syncwarp();
  const bool limit = p.max_nodes > 0 && p.max_nodes < p.nodes;
  int rerouted = 0;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int32_t* sel = topk_ids + t * p.k;
    float z[VPT], key[VPT];
    int node[VPT];
    unsigned used = 0;
    for (int j = 0; j < p.k; ++j)
      if ((sel[j] & 31) == lane) used |= 1u << (sel[j] >> 5);
    bool loaded = false;
    uint64_t ok = ~0ull;
    float mx = 0.0f, sum = 1.0f;
    for (int j = 0; j < p.k; ++j) {
      const int64_t c = t * p.k + j;
      const int e = sel[j];
      const bool fits = room[e / ep] > 0;
      __syncwarp();
      if (fits) {
        if (lane == 0) {
          --room[e / ep];
          ids[c] = e;
          weights[c] = topk_scores[c];
          dropped[c] = 0;
        }
        __syncwarp();
        continue;
      }
      if (!loaded) {
        const float* row = logits + t * n;
        mx = -INFINITY;
#pragma unroll
        for (int i = 0; i < VPT; ++i) {
          const int ee = lane + 32 * i;
          z[i] = ee < n ? row[ee] : -INFINITY;
          key[i] = ee < n && bias ? z[i] + bias[ee] : z[i];
          node[i] = ee < n && limit ? p.node_of_rank[ee / ep] : -1;
          mx = fmaxf(mx, z[i]);
        }
        for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, off));
        sum = 0.0f;
#pragma unroll
        for (int i = 0; i < VPT; ++i)
          if (lane + 32 * i < n) sum += expf(z[i] - mx);
        for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(kFull, sum, off);
        if (limit) ok = detail::allowed_nodes<VPT, 32>(p, key, node, lane);
        loaded = true;
      }
      Best b{0.0f, INT_MAX};
#pragma unroll
      for (int i = 0; i < VPT; ++i) {
        const int ee = lane + 32 * i;
        if (ee < n && !(used >> i & 1u) && (!limit || (ok >> node[i] & 1ull)) &&
            room[ee / ep] > 0 && better(key[i], ee, b))
          b = Best{key[i], ee};
      }
      b = group_best<32>(b);
      float sc = 0.0f;
      if (b.i != INT_MAX) {
#pragma unroll
        for (int i = 0; i < VPT; ++i)
          if (lane + 32 * i == b.i) {
            used |= 1u << i;
            sc = p.score == kGateSoftmax ? expf(z[i] - mx) / sum : 1.0f / (1.0f + expf(-z[i]));
          }
        sc = __shfl_sync(kFull, sc, b.i & 31);
      }
      __syncwarp();
      if (lane == 0) {
        if (b.i == INT_MAX) {
          ids[c] = -1;
          weights[c] = 0.0f;
          dropped[c] = 1;
        } else {
          --room[b.i / ep];
          ids[c] = b.i;
          weights[c] = sc;
          dropped[c] = 0;
          ++rerouted;
        }
      }
      __syncwarp();
    }
    if (normalize && lane == 0) {
      float s = 0.0f;
      for (int j = 0; j < p.k; ++j) s += weights[t * p.k + j];
      if (s > 0.0f)
        for (int j = 0; j < p.k; ++j) weights[t * p.k + j] /= s;
    }
  }
  if (lane == 0 && num_rerouted) *num_rerouted = rerouted;
}

int blocks_for(int64_t items) {
  const int64_t b = (items + 255) / 256;
  return static_cast<int>(b < 1 ? 1 : (b > 4096 ? 4096 : b));
}

}  // namespace

size_t gate_capacity_workspace_bytes(const GateParams& p) {
  return carve(p, nullptr).total;
}

cudaError_t gate_capacity(const GateParams& p, const CapacityParams& c, const float* logits,
                          const float* bias, const int32_t* topk_ids, const float* topk_scores,
                          int32_t* expert_ids, float* weights, uint8_t* dropped,
                          int32_t* num_rerouted, void* workspace, size_t workspace_bytes,
                          cudaStream_t stream) {
  if (p.tokens < 0 || p.experts < 1 || p.experts > kGateMaxExperts || p.k < 1 || p.k > p.experts ||
      p.experts_per_rank < 1 || p.ranks * p.experts_per_rank != p.experts)
    return cudaErrorInvalidValue;
  if (c.overflow != kGateDropless && !c.capacity) return cudaErrorInvalidValue;
  const int64_t n = p.tokens * p.k;
  cudaError_t rc = cudaSuccess;
  if (num_rerouted && (rc = cudaMemsetAsync(num_rerouted, 0, sizeof(int32_t), stream))) return rc;
  if (n == 0) return cudaSuccess;
  if (c.overflow == kGateReroute) {
    const int vpt = (p.experts + 31) / 32;
    const size_t shmem = sizeof(long long) * p.ranks;
#define TAMOE_REROUTE(V)                                                                          \
  reroute_kernel<V><<<1, 32, shmem, stream>>>(p, c.normalize, c.capacity, logits, bias, topk_ids, \
                                              topk_scores, expert_ids, weights, dropped,          \
                                              num_rerouted)
    if (vpt <= 1)
      TAMOE_REROUTE(1);
    else if (vpt <= 2)
      TAMOE_REROUTE(2);
    else if (vpt <= 4)
      TAMOE_REROUTE(4);
    else if (vpt <= 8)
      TAMOE_REROUTE(8);
    else if (vpt <= 16)
      TAMOE_REROUTE(16);
    else
      TAMOE_REROUTE(32);
#undef TAMOE_REROUTE
    return cudaGetLastError();
  }
  if (c.overflow == kGateDropless) {
    if ((rc = cudaMemsetAsync(dropped, 0, static_cast<size_t>(n), stream))) return rc;
  } else {
    Workspace w = carve(p, workspace);
    if (!workspace || workspace_bytes < w.total) return cudaErrorInvalidValue;
    make_keys<<<blocks_for(n), 256, 0, stream>>>(topk_ids, topk_scores, n, p.experts_per_rank,
                                                 w.keys_in, w.vals_in);
    rc = cub::DeviceRadixSort::SortPairs(w.cub_temp, w.cub_bytes, w.keys_in, w.keys_out, w.vals_in,
                                         w.vals_out, n, 0, 32 + rank_bits(p.ranks), stream);
    if (rc != cudaSuccess) return rc;
    segment_starts<<<blocks_for(n), 256, 0, stream>>>(w.keys_out, n, w.start);
    mark_over_capacity<<<blocks_for(n), 256, 0, stream>>>(w.keys_out, w.vals_out, n, w.start,
                                                          c.capacity, dropped);
  }
  finalize<<<blocks_for(p.tokens), 256, 0, stream>>>(topk_ids, topk_scores, p.tokens, p.k,
                                                     c.normalize, dropped, expert_ids, weights);
  return cudaGetLastError();
}

}  // namespace tamoe::kernels
