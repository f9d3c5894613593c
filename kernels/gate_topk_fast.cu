// Memory-bound top-k for k <= 8. A group of G lanes (8, 16 or 32) holds one token: lane l owns the
// float4 chunks c = l + G * j (experts 4c..4c+3), so one load instruction of the group reads 16 * G
// contiguous bytes. Each lane keeps the L = min(K, 4 * V4) largest keys of its chunks as a sorted
// float list (max/min insertion, two FMNMX per position, no index), then k rounds merge the lane
// heads: a float max over G lanes, a ballot for the winning lane (ties between lanes go to the
// lowest expert index), and the winner pops its head. After the rounds, lane s of the group holds
// slot s as (winning lane, key, occurrence), finds the expert by re-reading that lane's chunks (L1)
// and writes id, score and the count. Equal keys inside a lane leave the list as consecutive pops,
// and the occurrence number picks them in index order: the host's tie rule (lower expert wins).
#include <climits>

#include "kernels/gate_device.cuh"
#include "kernels/gate_topk_fast.cuh"

namespace tamoe::kernels::detail {

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

// The zeroing kernel: count[0..n) = 0 and *nonfinite = UINT64_MAX (either may be null).
__global__ void prep_kernel(int32_t* count, int n, unsigned long long* nonfinite) {
  launch_dependents();
  if (count)
    for (int e = threadIdx.x; e < n; e += blockDim.x) count[e] = 0;
  if (nonfinite && threadIdx.x == 0) *nonfinite = ~0ull;
}

template <int V4>
__device__ __forceinline__ void load_chunks(const float4* row, bool live, int lane, int g, int n4,
                                            float4 (&v)[V4]) {
#pragma unroll
  for (int j = 0; j < V4; ++j) {
    const int c = lane + g * j;
    v[j] =
        live && c < n4 ? __ldg(row + c) : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
  }
}

constexpr float kLog2e = 1.4426950408889634f;

// 2^x in one MUFU instruction (relative error ~2^-22): the softmax sum over all N experts uses it
// (expf costs ~6 more instructions per expert); the k chosen scores keep expf.
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float comp(const float4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}

template <int G, int V4, int K>
__global__ void __launch_bounds__(kThreads)
    topk_fast_kernel(int64_t tokens, int n, int k, int score_fn, const float* __restrict__ logits,
                     const float* __restrict__ bias, int32_t* __restrict__ ids,
                     float* __restrict__ scores, float* __restrict__ lse_out,
                     int32_t* __restrict__ count, unsigned long long* nonfinite) {
  constexpr int V = 4 * V4;
  constexpr int L = K < V ? K : V;
  constexpr int kTokensPerWarp = 32 / G;
  constexpr unsigned kGroupBits = G == 32 ? kFull : (1u << G) - 1u;
  extern __shared__ int32_t hist[];
  const int warp_lane = threadIdx.x & 31;
  const int lane = warp_lane % G;
  const int group_base = warp_lane - lane;
  const int group = warp_lane / G;
  const int warp = threadIdx.x >> 5;
  const int n4 = n >> 2;
  const float4* bias4 = reinterpret_cast<const float4*>(bias);
  if (count) {
    for (int e = threadIdx.x; e < n; e += blockDim.x) hist[e] = 0;
    __syncthreads();
  }
  // The lane's experts are the same for every token, so their bias stays in registers.
  float b[V];
#pragma unroll
  for (int j = 0; j < V4; ++j) {
    const int c = lane + G * j;
    const float4 v = bias && c < n4 ? __ldg(bias4 + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (int i = 0; i < 4; ++i) b[4 * j + i] = comp(v, i);
  }
  const int64_t stride = int64_t(gridDim.x) * kWarps * kTokensPerWarp;
  int64_t t0 = (int64_t(blockIdx.x) * kWarps + warp) * kTokensPerWarp;
  float4 cur[V4];
  load_chunks<V4>(reinterpret_cast<const float4*>(logits + (t0 + group) * n), t0 + group < tokens,
                  lane, G, n4, cur);
  // The loop bound is per warp so that every lane takes part in every shuffle.
  for (; t0 < tokens; t0 += stride) {
    const int64_t t = t0 + group;
    const bool live = t < tokens;
    const float4* row = reinterpret_cast<const float4*>(logits + t * n);
    // Next token's chunks are in flight while this one is ranked.
    float4 nxt[V4];
    load_chunks<V4>(reinterpret_cast<const float4*>(logits + (t + stride) * n), t + stride < tokens,
                    lane, G, n4, nxt);
    float z[V];
#pragma unroll
    for (int j = 0; j < V4; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) z[4 * j + i] = comp(cur[j], i);

    if (nonfinite) {
      // x * 0 is NaN exactly for Inf and NaN; padding chunks are skipped.
      float acc = 0.0f;
#pragma unroll
      for (int i = 0; i < V; ++i)
        if (live && lane + G * (i / 4) < n4) acc = fmaf(z[i], 0.0f, acc);
      if (acc != acc) {
        wait_prerequisites();  // the zeroing kernel initialises *nonfinite
#pragma unroll
        for (int i = 0; i < V; ++i) {
          const int e = 4 * (lane + G * (i / 4)) + i % 4;
          if (e < n && !isfinite(z[i]))
            atomicMin(nonfinite, static_cast<unsigned long long>(t * n + e));
        }
      }
    }

    // Softmax statistics (padding is -inf: exp gives 0).
    float mx = z[0];
#pragma unroll
    for (int i = 1; i < V; ++i) mx = fmaxf(mx, z[i]);
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, off));
    float sum = 0.0f;
    if (lse_out || score_fn == kGateSoftmax) {
#pragma unroll
      for (int i = 0; i < V; ++i) sum += ex2((z[i] - mx) * kLog2e);
#pragma unroll
      for (int off = G / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(kFull, sum, off);
    }

    // The lane's L largest keys, descending: a'[l] = max(a[l], min(a[l-1], x)).
    float a[L];
#pragma unroll
    for (int l = 0; l < L; ++l) a[l] = -INFINITY;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float x = z[i] + b[i];
#pragma unroll
      for (int l = (i < L - 1 ? i : L - 1); l > 0; --l) a[l] = fmaxf(a[l], fminf(a[l - 1], x));
      a[0] = fmaxf(a[0], x);
    }

    // k merge rounds over lane heads. A lane pops equal keys consecutively; `run` numbers them.
    float last = __int_as_float(0x7fffffff);  // NaN: equal to nothing
    int run = 0;
    int hold_w = 0, hold_r = 0;
    float hold_v = 0.0f;
#pragma unroll
    for (int s = 0; s < K; ++s) {
      if (s >= k) break;
      float gm = a[0];
#pragma unroll
      for (int off = G / 2; off > 0; off >>= 1) gm = fmaxf(gm, __shfl_xor_sync(kFull, gm, off));
      const unsigned mine = (__ballot_sync(kFull, a[0] == gm) >> group_base) & kGroupBits;
      int w = mine ? __ffs(static_cast<int>(mine)) - 1 : 0;
      if (__any_sync(kFull, __popc(mine) > 1)) {
        // Equal heads on several lanes: the lowest expert index among them wins. A head's index
        // is the occurrence-th element of the lane (index order) with that key.
        int want = a[0] == last ? run + 1 : 0;
        int idx = INT_MAX;
        if (mine >> lane & 1u) {
#pragma unroll
          for (int i = 0; i < V; ++i) {
            const int e = 4 * (lane + G * (i / 4)) + i % 4;
            if (idx == INT_MAX && e < n && z[i] + b[i] == a[0]) {
              if (want == 0)
                idx = e;
              else
                --want;
            }
          }
        }
#pragma unroll
        for (int off = G / 2; off > 0; off >>= 1) idx = min(idx, __shfl_xor_sync(kFull, idx, off));
        if (idx != INT_MAX) w = (idx / 4) % G;
      }
      if (lane == w) {
        run = a[0] == last ? run + 1 : 0;
        last = a[0];
#pragma unroll
        for (int l = 0; l + 1 < L; ++l) a[l] = a[l + 1];
        a[L - 1] = -INFINITY;
      }
      const int r = __shfl_sync(kFull, run, group_base + w);
      if (lane == s) {
        hold_w = w;
        hold_v = gm;
        hold_r = r;
      }
    }

    // Lane s < k resolves slot s: the hold_r-th chunk element of lane hold_w (index order) whose
    // key equals hold_v. The chunks were just read, so these loads hit L1.
    if (live && lane < k) {
      int e_out = -1;
      float z_out = 0.0f;
      int want = hold_r;
#pragma unroll
      for (int j = 0; j < V4; ++j) {
        const int c = hold_w + G * j;
        if (c < n4 && e_out < 0) {
          const float4 zz = __ldg(row + c);
          const float4 bb = bias ? __ldg(bias4 + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
          for (int i = 0; i < 4; ++i)
            if (e_out < 0 && comp(zz, i) + comp(bb, i) == hold_v) {
              if (want == 0) {
                e_out = 4 * c + i;
                z_out = comp(zz, i);
              } else {
                --want;
              }
            }
        }
      }
      const float sc =
          score_fn == kGateSoftmax ? expf(z_out - mx) / sum : 1.0f / (1.0f + expf(-z_out));
      ids[t * k + lane] = e_out;  // -1 only for non-finite logits (reported)
      scores[t * k + lane] = sc;
      if (count && e_out >= 0) atomicAdd(&hist[e_out], 1);
    }
    if (live && lse_out && lane == 0) lse_out[t] = mx + logf(sum);
#pragma unroll
    for (int j = 0; j < V4; ++j) cur[j] = nxt[j];
  }
  if (count) {
    __syncthreads();
    wait_prerequisites();  // the zeroing kernel has finished
    for (int e = threadIdx.x; e < n; e += blockDim.x)
      if (hist[e]) atomicAdd(&count[e], hist[e]);
  }
}

template <int G, int V4, int K>
cudaError_t launch(const GateParams& p, const float* logits, const float* bias, int32_t* ids,
                   float* scores, float* lse, int32_t* count, unsigned long long* nonfinite,
                   bool after_prep, cudaStream_t stream) {
  auto* kernel = topk_fast_kernel<G, V4, K>;
  const size_t shmem = count ? sizeof(int32_t) * p.experts : 0;
  // Resident blocks per SM, for the largest histogram; computed once per instantiation.
  static const int per_sm = [kernel] {
    int b = 1;
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, kThreads,
                                                  sizeof(int32_t) * kGateMaxExperts);
    return b < 1 ? 1 : b;
  }();
  int dev = 0, sms = 132;
  if (cudaGetDevice(&dev) == cudaSuccess)
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  // One resident wave: each block loops over tokens, so the per-block histogram flush (N global
  // atomics) happens once per block, not once per 32 tokens; every block gets the same number of
  // iterations so that no tail of half-idle SMs remains.
  const int64_t per_block = int64_t(kWarps) * (32 / G);
  const int64_t want = (p.tokens + per_block - 1) / per_block;
  const int64_t cap = int64_t(sms) * per_sm;
  const int64_t iters = (want + cap - 1) / cap;
  const int64_t grid = (want + iters - 1) / iters;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(grid));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = shmem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  // Only right after the zeroing kernel: overlapping an arbitrary earlier kernel (the one that
  // wrote the logits) would be a race.
  cfg.attrs = attr;
  cfg.numAttrs = after_prep ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, p.tokens, p.experts, p.k, p.score, logits, bias, ids,
                            scores, lse, count, nonfinite);
}

template <int G, int V4>
cudaError_t launch_k(const GateParams& p, const float* logits, const float* bias, int32_t* ids,
                     float* scores, float* lse, int32_t* count, unsigned long long* nonfinite,
                     bool after_prep, cudaStream_t stream) {
  if (p.k <= 2)
    return launch<G, V4, 2>(p, logits, bias, ids, scores, lse, count, nonfinite, after_prep,
                            stream);
  if (p.k <= 4)
    return launch<G, V4, 4>(p, logits, bias, ids, scores, lse, count, nonfinite, after_prep,
                            stream);
  return launch<G, V4, 8>(p, logits, bias, ids, scores, lse, count, nonfinite, after_prep, stream);
}

bool aligned16(const void* ptr) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

}  // namespace

cudaError_t launch_prep(int32_t* zero_count, int experts, unsigned long long* first_nonfinite,
                        cudaStream_t stream) {
  prep_kernel<<<1, 256, 0, stream>>>(zero_count, experts, first_nonfinite);
  return cudaGetLastError();
}

bool topk_fast_supported(const GateParams& p, const float* logits, const float* bias) {
  const bool limit = p.max_nodes > 0 && p.max_nodes < p.nodes;
  return !limit && p.k >= 1 && p.k <= 8 && p.experts % 4 == 0 && p.experts <= 1024 &&
         (p.score == kGateSoftmax || p.score == kGateSigmoid) && aligned16(logits) &&
         (!bias || aligned16(bias));
}

cudaError_t topk_fast(const GateParams& p, const float* logits, const float* bias,
                      int32_t* expert_ids, float* scores, float* lse, int32_t* expert_count,
                      unsigned long long* first_nonfinite, cudaStream_t stream) {
  int32_t* zero = p.zero_count ? expert_count : nullptr;
  const bool prep = zero || first_nonfinite;
  if (prep) {
    const cudaError_t rc = launch_prep(zero, p.experts, first_nonfinite, stream);
    if (rc != cudaSuccess) return rc;
  }
  if (p.tokens == 0) return cudaSuccess;
  const int n = p.experts;
#define TAMOE_FAST(G, V4)                                                                         \
  return launch_k<G, V4>(p, logits, bias, expert_ids, scores, lse, expert_count, first_nonfinite, \
                         prep, stream)
  // Lanes per token: fewer lanes (more tokens per warp) make the merge rounds cheaper per token;
  // 16 values per lane keep the insertion lists short.
  if (n <= 32) TAMOE_FAST(8, 1);
  if (n <= 64) TAMOE_FAST(8, 2);
  if (n <= 128) TAMOE_FAST(8, 4);
  if (n <= 256) TAMOE_FAST(16, 4);
  if (n <= 512) TAMOE_FAST(32, 4);
  TAMOE_FAST(32, 8);
#undef TAMOE_FAST
}

}  // namespace tamoe::kernels::detail
