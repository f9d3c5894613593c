// Device helpers shared by the gate kernels: a group of G lanes (8, 16 or 32; aligned inside a
// warp) holds one token's N keys in registers, VPT = ceil(N / G) per lane, expert e = lane + G * i
// where lane is the index inside the group. Several tokens per warp keep more loads in flight.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "kernels/gate_kernels.h"

namespace tamoe::kernels::detail {

constexpr unsigned kFull = 0xffffffffu;

// Best (value, index): larger value, ties to the lower index; index INT_MAX means none.
struct Best {
  float v;
  int i;
};

__device__ __forceinline__ bool better(float v, int i, const Best& b) {
  if (i == INT_MAX) return false;
  if (b.i == INT_MAX) return true;
  return v > b.v || (v == b.v && i < b.i);
}

// Reduction inside each aligned group of G lanes (xor offsets < G never leave the group).
template <int G>
__device__ __forceinline__ Best group_best(Best b) {
#pragma unroll
  for (int off = G / 2; off > 0; off >>= 1) {
    const float v = __shfl_xor_sync(kFull, b.v, off);
    const int i = __shfl_xor_sync(kFull, b.i, off);
    if (better(v, i, b)) b = Best{v, i};
  }
  return b;
}

// Allowed-node mask of one token (all ones without a node limit). node[i] is the node of this
// lane's i-th expert (-1 for lanes past N); lane is the index inside the group.
template <int VPT, int G>
__device__ uint64_t allowed_nodes(const GateParams& p, const float (&key)[VPT],
                                  const int (&node)[VPT], int lane) {
  if (p.max_nodes <= 0 || p.max_nodes >= p.nodes) return ~0ull;
  float group[kGateMaxNodes];
  for (int n = 0; n < p.nodes; ++n) {
    // Sum of the node's top-g keys in descending order, from 0: the host's order.
    unsigned taken = 0;
    float s = 0.0f;
    for (int g = 0; g < p.node_score_top; ++g) {
      Best b{0.0f, INT_MAX};
#pragma unroll
      for (int i = 0; i < VPT; ++i)
        if (node[i] == n && !(taken >> i & 1u) && better(key[i], lane + G * i, b))
          b = Best{key[i], lane + G * i};
      b = group_best<G>(b);
      if (b.i == INT_MAX) break;  // node has fewer than g experts
      s += b.v;
      if (b.i % G == lane) taken |= 1u << (b.i / G);
    }
    group[n] = s;
  }
  uint64_t ok = 0;
  for (int m = 0; m < p.max_nodes; ++m) {
    int best = -1;
    for (int n = 0; n < p.nodes; ++n)
      if (!(ok >> n & 1ull) && (best < 0 || group[n] > group[best])) best = n;
    ok |= 1ull << best;
  }
  return ok;
}

// Programmatic dependent launch (sm_90). A kernel launched with programmatic stream serialization
// may start before the kernel ahead of it on the stream has finished (once that one triggers, or
// ends): it must call wait_prerequisites() before it reads anything the earlier kernels wrote or
// writes anything they still use. The fast top-k path chains its kernels this way, so a step's
// launch latency hides behind the previous kernel's tail.
__device__ __forceinline__ void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_prerequisites() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ bool finite(float v) {
  return isfinite(v);
}

}  // namespace tamoe::kernels::detail
