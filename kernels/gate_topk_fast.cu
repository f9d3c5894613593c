// Memory-bound top-k for k <= 8 without per-lane sorted lists. A group of G lanes (4 or 8 up to 128
// experts, 16 up to 256, 32 above) holds one token: lane l owns the float4 chunks c = l + G * j
// (experts 4c..4c+3). Rows travel to shared memory by cp.async (16 bytes a lane per chunk, L2
// only), kStages - 1 tokens ahead of the one being ranked, so the loads in flight cost no registers
// and the ranking reads the keys of other lanes from the same copy.
//
// Selection by threshold. Each lane takes the largest of its keys (and, on 4 or 8 lanes with k > 2,
// the second largest too; for k = 5-8 on 4 lanes the maxima of its four 4-key chunks); the k-th
// largest of these values, T, is at most the token's k-th largest key (they are distinct keys of
// the token), so the top k are among the keys >= T. On random logits ~1.05k to 1.3k keys pass.
// The group writes the candidates (key, expert) to a list in shared memory, and each lane ranks up
// to 1, 2, 3 or 4 candidates in one pass over the whole list (greater key, or equal key and lower
// expert: the host's tie rule; rank_candidates); rank r < k is slot r. One compare per key replaces
// a per-key insertion into a k-long list, so k costs little. k = 2 on 4 lanes skips the threshold:
// the lanes' best two (key, expert) are merged directly.
//
// Correctness does not depend on T being a bound: the list holds every key >= T, and when it has
// fewer than k entries, more than kMaxCand (many equal keys, e.g. a constant row) or T is -inf
// (non-finite or padded rows), the warp takes the exact fallback instead: k rounds of "best key
// after the previous pick" (key descending, expert ascending) over all keys, reduced over the
// group.
#include <climits>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/gate_device.cuh"
#include "kernels/gate_topk_fast.cuh"

namespace tamoe::kernels::detail {

namespace {

// Block shape of the G-lane kernel (V4 chunks per lane). 256 threads for 4 or 8 lanes per token
// (half the blocks: fewer per-block setups and histogram flushes; 2-5% faster on H100 at N =
// 64-128), 128 above (256 was 2-6% slower at N = 256). Two row buffers per group: the token being
// ranked and the next one in flight (three were 2-15% slower: fewer resident blocks). With the rows
// in shared memory instead of registers, 4 and 8 lanes with up to 16 keys each fit 64 registers
// without spilling, so __launch_bounds__ asks for 4 resident blocks (32 warps per SM): on H100 that
// took N = 128 from 21.4 / 24.0 / 29.8 to 20.0 / 22.6 / 27.1 us at k = 2 / 4 / 8. (With the rows in
// registers, the same request spilled and was 10-40% slower.) 16 and 32 lanes keep the default.
// kSmall: 128 threads and 8 resident blocks, for 4 lanes with k >= 4, where blocks of 4 warps wait
// less for one another at their barriers (H100, N = 64, three runs: k = 4 13.16-13.38 ->
// 12.90-12.93 us, k = 6 14.47-14.57 -> 14.29-14.34, k = 8 16.46-16.50 -> 16.22-16.28); k = 3 was
// 4% slower with them (12.5 -> 13.0 us), k = 2 18% (10.9 -> 12.8).
template <int G, int V4, bool kSmall = false>
struct BlockShape {
  static constexpr int threads = kSmall || G > 8 ? 128 : 256;
  static constexpr int stages = 2;
  static constexpr int min_blocks = G <= 8 && V4 <= 4 ? (kSmall ? 8 : 4) : 1;
};

// The zeroing kernel: count[0..n) = 0 and *nonfinite = UINT64_MAX (either may be null). Launched
// programmatically: it lets the top-k kernel launch at once, and waits for the kernel before it
// (which may still read or add to the counts) before it writes.
__global__ void prep_kernel(int32_t* count, int n, unsigned long long* nonfinite) {
  launch_dependents();
  wait_prerequisites();
  if (count)
    for (int e = threadIdx.x; e < n; e += blockDim.x) count[e] = 0;
  if (nonfinite && threadIdx.x == 0) *nonfinite = ~0ull;
}

// 16 bytes global -> shared without registers (cp.async, cached in L2 only).
__device__ __forceinline__ void cp_async16(float4* smem, const float4* gmem) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(gmem) : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}

// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
}

// The lane's chunks of one row into the group's buffer; padding chunks (c >= n4) are not copied.
template <int V4>
__device__ __forceinline__ void fetch_row(float4* dst, const float4* row, int lane, int g, int n4,
                                          int sw) {
#pragma unroll
  for (int j = 0; j < V4; ++j) {
    const int c = lane + g * j;
    if (c < n4) cp_async16(dst + (c ^ sw), row + c);
  }
}

constexpr float kLog2e = 1.4426950408889634f;

// 2^x in one MUFU instruction (relative error ~2^-22): the softmax sum over all N experts uses it
// (expf costs ~6 more instructions per expert), and so do the k chosen scores.
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// The score of a chosen expert with logit z: exp(z - mx) / sum (softmax; mxl = mx * log2(e), the
// same term as in the sum, so a rounding of mxl cancels in the ratio) or the sigmoid of z. (ex2
// instead of expf: H100, N = 64 k = 4 / 8 12.57 / 14.1 -> 12.5 / 13.9 us, N = 256 k = 2 32.3 ->
// 32.0.)
__device__ __forceinline__ float chosen_score(int score_fn, float z, float mxl, float inv_sum) {
  return score_fn == kGateSoftmax ? ex2(fmaf(z, kLog2e, -mxl)) * inv_sum : 1.0f / (1.0f + expf(-z));
}

__device__ __forceinline__ float comp(const float4& v, int i) {
  return i == 0 ? v.x : (i == 1 ? v.y : (i == 2 ? v.z : v.w));
}

// Threshold of a group of G lanes (aligned inside the warp; xor offsets < G never leave it): the
// k-th largest of the lane values. Each lane brings its largest key m1 and, for k > 2, also its
// second largest m2 (m1 >= m2): 2G distinct keys of the token, so the k-th largest of them is at
// most the token's k-th largest key. k = 1: a max butterfly over m1; k = 2: a butterfly over
// (largest, second) pairs of m1; k > 2: a bitonic sort, descending, of the 2G values, element
// 2 * lane + s holding m1 (s = 0) or m2 (s = 1), and element k - 1.
template <int G, bool kTop2>
__device__ __forceinline__ float group_threshold(float m1, float m2, int lane, int group_base,
                                                 int k) {
  if (k == 1) {
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) m1 = fmaxf(m1, __shfl_xor_sync(kFull, m1, off));
    return m1;
  }
  if (k == 2) {
    float v2 = -INFINITY;
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) {
      const float o = __shfl_xor_sync(kFull, m1, off);
      const float o2 = __shfl_xor_sync(kFull, v2, off);
      v2 = fmaxf(fminf(m1, o), fmaxf(v2, o2));
      m1 = fmaxf(m1, o);
    }
    return v2;
  }
  if (!kTop2) {
#pragma unroll
    for (int size = 2; size <= G; size <<= 1)
#pragma unroll
      for (int stride = size / 2; stride > 0; stride >>= 1) {
        const float o = __shfl_xor_sync(kFull, m1, stride);
        const bool desc = (lane & size) == 0;
        m1 = (((lane & stride) == 0) == desc) ? fmaxf(m1, o) : fminf(m1, o);
      }
    return __shfl_sync(kFull, m1, group_base + k - 1);
  }
  float a = m1, b = m2;
#pragma unroll
  for (int size = 2; size <= 2 * G; size <<= 1)
#pragma unroll
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      // Runs of `size` elements alternate direction; the last stage sorts descending.
      const bool desc = ((2 * lane) & size) == 0;
      if (stride == 1) {  // the partner is the lane's other element
        const float hi = fmaxf(a, b), lo = fminf(a, b);
        a = desc ? hi : lo;
        b = desc ? lo : hi;
      } else {
        const int off = stride / 2;
        const float oa = __shfl_xor_sync(kFull, a, off);
        const float ob = __shfl_xor_sync(kFull, b, off);
        const bool keep_max = ((lane & off) == 0) == desc;
        a = keep_max ? fmaxf(a, oa) : fminf(a, oa);
        b = keep_max ? fmaxf(b, ob) : fminf(b, ob);
      }
    }
  return __shfl_sync(kFull, (k - 1) & 1 ? b : a, group_base + ((k - 1) >> 1));
}

constexpr int kMaxCand = 32;  // candidates one group may write to shared memory

// r += 1 where a > b (NaN compares false): a compare and a predicated add. Written as `r += a > b`
// the compiler made it a compare, an add into a new register and a predicated move back (three
// instructions; the ranking loops were 29% of all at N = 64 k = 8). H100, N = 64 k = 6 / 8:
// 14.3 / 16.2 -> 14.0 / 16.0 us, N = 128 k = 8 23.3 -> 22.9.
__device__ __forceinline__ void add_gt(int& r, float a, float b) {
  asm("{\n\t.reg .pred p;\n\tsetp.gt.f32 p, %1, %2;\n\t@p add.s32 %0, %0, 1;\n\t}"
      : "+r"(r)
      : "f"(a), "f"(b));
}

// r += 1 where (a, ea) comes before (b, eb) in the host's order (key descending, then expert
// ascending): three compares chained through one predicate and a predicated add (was five).
__device__ __forceinline__ void add_before(int& r, float a, int ea, float b, int eb) {
  asm("{\n\t.reg .pred p;\n\t"
      "setp.lt.s32 p, %2, %4;\n\t"
      "setp.eq.and.f32 p, %1, %3, p;\n\t"
      "setp.gt.or.f32 p, %1, %3, p;\n\t"
      "@p add.s32 %0, %0, 1;\n\t}"
      : "+r"(r)
      : "f"(a), "r"(ea), "f"(b), "r"(eb));
}

// a >= b afterwards.
__device__ __forceinline__ void order2(float& a, float& b) {
  const float hi = fmaxf(a, b);
  b = fminf(a, b);
  a = hi;
}

// Threshold from the maxima of the lane's 4 chunks (4 keys each) on 4 lanes: 16 distinct keys of
// the token, so their k-th largest (k = 5-8) is at most the token's k-th largest key. For k = 5-8
// on 4 lanes (N <= 64), where the lanes' top two (8 values) bound the 8th key loosely (~13
// candidates on random logits against ~10 here). By merges: each lane sorts its 4, a pair of lanes
// (lane ^ 1) merges into the same sorted 8, and the two pairs (lane ^ 2) take the top 8 of their 16
// as the larger of each element and its mirror (a bitonic merge's first step): their smallest is
// the 8th, and sorted they give the 5th-7th. Every lane gets the result: no direction selects, no
// final shuffle; a third fewer instructions than a bitonic sort of all 16 (H100, N = 64 k = 8 16.2
// -> 15.7 us, k = 6 14.3 -> 13.8).
__device__ __forceinline__ float chunk_kth4(float (&a)[4], int k) {
  order2(a[0], a[1]);
  order2(a[2], a[3]);
  order2(a[0], a[2]);
  order2(a[1], a[3]);
  order2(a[1], a[2]);
  float s[8];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float b = __shfl_xor_sync(kFull, a[3 - i], 1);  // the partner's, ascending
    s[i] = fmaxf(a[i], b);
    s[4 + i] = fminf(a[i], b);
  }
#pragma unroll
  for (int h = 0; h < 8; h += 4) {
    order2(s[h], s[h + 2]);
    order2(s[h + 1], s[h + 3]);
    order2(s[h], s[h + 1]);
    order2(s[h + 2], s[h + 3]);
  }
  float u[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) u[i] = fmaxf(s[i], __shfl_xor_sync(kFull, s[7 - i], 2));
  if (k == 8) {
    float m = u[0];
#pragma unroll
    for (int i = 1; i < 8; ++i) m = fminf(m, u[i]);
    return m;
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) order2(u[i], u[i + 4]);
#pragma unroll
  for (int h = 0; h < 8; h += 4) {
    order2(u[h], u[h + 2]);
    order2(u[h + 1], u[h + 3]);
    order2(u[h], u[h + 1]);
    order2(u[h + 2], u[h + 3]);
  }
  return k == 5 ? u[4] : (k == 6 ? u[5] : u[6]);
}

// Ranks of candidates lane + G * j (j < R) in a group's list of nr (key, expert), in the host's
// order (key descending, then expert ascending). With `strict`: first the number of list keys
// above each, one float compare per pair; that is the rank unless two candidates share a key,
// which then share a rank. The group sees it (the OR of 1 << rank has fewer than nr bits), and
// only then are the ranks counted again with the tie rule. The check costs a few shuffles per
// token, which pays where lists are long or lanes many (H100: N = 256 3-4% faster, N = 64 k = 8
// 1-2%) but not on 4 lanes or for k = 2 on 8 (1.5-2% slower), so those count with the tie rule at
// once. All lanes of the warp take part (nr = 0 for a group with no token).
template <int G, int R>
__device__ __forceinline__ void rank_candidates(const float2* list, int nr, int lane, bool strict,
                                                float2 (&m)[R], int (&r)[R]) {
  const float2 none = make_float2(-INFINITY, __int_as_float(INT_MAX));
#pragma unroll
  for (int j = 0; j < R; ++j) {
    m[j] = lane + G * j < nr ? list[lane + G * j] : none;
    r[j] = 0;
  }
  if (strict) {
    for (int i = 0; i < nr; ++i) {
      const float o = list[i].x;
#pragma unroll
      for (int j = 0; j < R; ++j) add_gt(r[j], o, m[j].x);
    }
    unsigned seen = 0;
#pragma unroll
    for (int j = 0; j < R; ++j) seen |= lane + G * j < nr ? 1u << r[j] : 0u;
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) seen |= __shfl_xor_sync(kFull, seen, off);
    if (!__any_sync(kFull, __popc(seen) != nr)) return;
#pragma unroll
    for (int j = 0; j < R; ++j) r[j] = 0;
  }
  for (int i = 0; i < nr; ++i) {
    const float2 o = list[i];
    const int oe = __float_as_int(o.y);
#pragma unroll
    for (int j = 0; j < R; ++j) add_before(r[j], o.x, oe, m[j].x, __float_as_int(m[j].y));
  }
}

template <int G, int V4, bool kChunks, bool kWhole, bool kSmall, bool kFlag>
__global__ void __launch_bounds__(BlockShape<G, V4, kSmall>::threads,
                                  BlockShape<G, V4, kSmall>::min_blocks)
    topk_fast_kernel(int64_t tokens, int n, int k, int score_fn, const float* __restrict__ logits,
                     const float* __restrict__ bias, int32_t* __restrict__ ids,
                     float* __restrict__ scores, float* __restrict__ lse_out,
                     int32_t* __restrict__ count, unsigned long long* nonfinite,
                     unsigned long long* zflag, unsigned long long zgen) {
  constexpr int V = 4 * V4;
  constexpr int kWarps = BlockShape<G, V4, kSmall>::threads / 32;
  constexpr int kTokensPerWarp = 32 / G;
  // One candidate list per group: (key, expert) and the logit. The odd stride (in float2) puts the
  // groups of a warp, which read their lists in lockstep, on different banks.
  constexpr int kStride = kMaxCand + 1;
  __shared__ float2 cand[kWarps * kTokensPerWarp * kStride];
  // 4 lanes (N <= 64): the ranking puts each chosen expert in its slot here, and lane s then writes
  // slots s and s + 4, one or two per lane instead of up to four on the lanes that hold them (H100,
  // N = 64, two calls: k = 8 17.6 -> 17.0 us, 16.0 -> 15.4 from a graph; k = 2 and 4 within 2%; at
  // 8 lanes and more it was 2-16% slower).
  constexpr bool kSlots = G == 4;
  __shared__ __align__(16) int slot_e[kSlots ? kWarps * kTokensPerWarp * 8 : 1];
  // Dynamic: the bias (N floats; zeros without bias), kStages rows of logits per group (the one
  // ranked, its candidates read back from it, and those in flight), then the histogram (N ints).
  extern __shared__ float4 dyn[];
  constexpr int kGroups = kWarps * kTokensPerWarp;
  constexpr int kStages = BlockShape<G, V4, kSmall>::stages;
  const int warp_lane = threadIdx.x & 31;
  const int lane = warp_lane % G;
  const int group_base = warp_lane - lane;
  const int group = warp_lane / G;
  const int warp = threadIdx.x >> 5;
  // kWhole: N = 4 * G * V4, every chunk of every lane is real, so no chunk needs a padding guard.
  const int n4 = kWhole ? G * V4 : n >> 2;
  const int list = (warp * kTokensPerWarp + group) * kStride;
  // Whole 4-lane rows (N = 64): odd groups keep chunk c at c ^ 4, so the two groups of a quarter
  // warp read (and cp.async writes) different banks; expert e's logit is then at float e ^ swf.
  // (ncu: the row reads and copies took twice their ideal wavefronts, 2 groups of a quarter warp on
  // the same banks. H100, N = 64 k = 2: 10.84 -> 10.58-10.64 us, k = 4-8 within 1%.)
  constexpr bool kSwz = kWhole && G == 4 && V4 % 2 == 0;
  const int sw = kSwz ? (group & 1) << 2 : 0;
  const int swf = sw << 2;
  float4* bias_s = dyn;
  // Buffer s of this group: rows + s * kGroups * n4.
  float4* rows = dyn + n4 * (1 + warp * kTokensPerWarp + group);
  int32_t* hist = reinterpret_cast<int32_t*>(dyn + n4 * (1 + kStages * kGroups));
  const float* bias_f = reinterpret_cast<const float*>(bias_s);
  const float4* bias4 = reinterpret_cast<const float4*>(bias);
  if (count)
    for (int e = threadIdx.x; e < n; e += blockDim.x) hist[e] = 0;
  // Launched programmatically: this block may start while the kernel before it (the zeroing
  // kernel, or the one that wrote the logits or the bias) still runs, so it waits for that kernel
  // before it reads any input.
  wait_prerequisites();
  const int64_t stride = int64_t(gridDim.x) * kGroups;
  int64_t t = (int64_t(blockIdx.x) * kWarps + warp) * kTokensPerWarp + group;
  // The loop bound is per warp so that every lane takes part in every shuffle.
  const int64_t warp_t0 = t - group;
  // Steps of this warp; a 32-bit division when the operands fit (a 64-bit one is ~85 instructions,
  // 6% of all at N = 64).
  const int64_t span = warp_t0 < tokens ? tokens - warp_t0 + stride - 1 : 0;
  const int64_t warp_steps = span <= UINT32_MAX && stride <= UINT32_MAX
                                 ? int64_t(uint32_t(span) / uint32_t(stride))
                                 : span / stride;
  // Rows past the last token (a warp's last step may be partly past it) load the last row again,
  // so no load needs a guard; only the writes check `live`.
  const float4* logits4 = reinterpret_cast<const float4*>(logits);
  const int64_t t0 = t;
  auto fetch = [&](int64_t step, int buf) {  // token t0 + step * stride into buffer buf
    if (step < warp_steps) {
      const int64_t tt = t0 + step * stride;
      fetch_row<V4>(rows + buf * kGroups * n4, logits4 + (tt < tokens ? tt : tokens - 1) * n4, lane,
                    G, n4, sw);
    }
    cp_async_commit();  // possibly empty: the wait below counts groups
  };
  // The first rows go out before the bias load, so the two round trips overlap.
#pragma unroll
  for (int s = 0; s + 1 < kStages; ++s) fetch(s, s);
  // kFlag (an eager call; see zero_flag): no zeroing kernel ran. Block 0 zeroes the counts now,
  // after the wait above (the kernel before may have been adding to them), and raises the flag to
  // this call's generation; every other block adds its counts only once it has seen the flag.
  if (kFlag && blockIdx.x == 0) {
    for (int e = threadIdx.x; e < n; e += blockDim.x) count[e] = 0;
    __threadfence();  // the zeros before the flag, at GPU scope (with the barrier below)
  }
  for (int c = threadIdx.x; c < n4; c += blockDim.x)
    bias_s[c] = bias ? __ldcg(bias4 + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);  // L2: coherent
  __syncthreads();
  if (kFlag && blockIdx.x == 0 && threadIdx.x == 0) atomicMax(zflag, zgen);  // never lowers it
  // The lane's bias chunks; a padding chunk (c >= n4) reads a real one: its keys stay -inf.
  int bias_chunk[V4];
#pragma unroll
  for (int j = 0; j < V4; ++j) bias_chunk[j] = lane + G * j < n4 ? lane + G * j : 0;
  int buf = 0;
  for (int64_t step = 0; step < warp_steps; ++step, t += stride) {
    const bool live = t < tokens;
    // kStages - 1 tokens ahead: into the buffer the previous step ranked (all lanes left it at that
    // step's closing __syncwarp).
    fetch(step + kStages - 1, buf == 0 ? kStages - 1 : buf - 1);
    cp_async_wait<kStages - 1>();  // this lane's chunks of token t have landed,
    __syncwarp();                  // and now those of the other lanes are visible to it
    const float4* row_s = rows + buf * kGroups * n4;
    const float* row_f = reinterpret_cast<const float*>(row_s);
    float z[V];
#pragma unroll
    for (int j = 0; j < V4; ++j) {
      const int c = lane + G * j;
      const float4 v =
          c < n4 ? row_s[c ^ sw] : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
#pragma unroll
      for (int i = 0; i < 4; ++i) z[4 * j + i] = comp(v, i);
    }

    if (nonfinite) {
      // x * 0 is NaN exactly for Inf and NaN; padding chunks are skipped.
      float acc = 0.0f;
#pragma unroll
      for (int i = 0; i < V; ++i)
        if (live && lane + G * (i / 4) < n4) acc = fmaf(z[i], 0.0f, acc);
      if (acc != acc) {
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
      const float mxl = mx * kLog2e;
#pragma unroll
      for (int i = 0; i < V; ++i) sum += ex2(fmaf(z[i], kLog2e, -mxl));
#pragma unroll
      for (int off = G / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(kFull, sum, off);
    }

    // Selection keys and the threshold. fmaxf drops NaN keys, so km is a real key of the lane or
    // -inf (padding is -inf, bias 0).
    float x[V];
    float km = -INFINITY;
#pragma unroll
    for (int j = 0; j < V4; ++j) {
      const float4 bb = bias_s[bias_chunk[j]];
#pragma unroll
      for (int i = 0; i < 4; ++i) x[4 * j + i] = z[4 * j + i] + comp(bb, i);
    }
    // k = 2 on 4 lanes (N <= 64) needs no threshold: each lane keeps its best two (key, expert)
    // and the group merges them (H100, N = 64: 14.6 -> 14.0 us; at 8-16 lanes and for k = 1 the
    // extra per-key selects cost more than the list and ranking they save, up to 19% at N = 256).
    bool done = false;
    if (G == 4 && k == 2) {
      // The lane's best two as key slots i (constants: no per-key expert arithmetic), then as
      // experts. Strict > keeps the lower expert of equal keys (a lane's experts ascend with i);
      // NaN and padding never win. A row with fewer than 2 keys above -inf takes the threshold
      // path, which sends it to the exact fallback.
      float v1 = -INFINITY, v2 = -INFINITY;
      int i1 = -1, i2 = -1;
#pragma unroll
      for (int i = 0; i < V; ++i) {
        const bool p1 = x[i] > v1, p2 = x[i] > v2;
        v2 = p1 ? v1 : (p2 ? x[i] : v2);
        i2 = p1 ? i1 : (p2 ? i : i2);
        v1 = p1 ? x[i] : v1;
        i1 = p1 ? i : i1;
      }
      auto expert = [lane](int i) { return i < 0 ? INT_MAX : 4 * (lane + G * (i >> 2)) + (i & 3); };
      Best b1{v1, expert(i1)}, b2{v2, expert(i2)};
      // Whether a takes an earlier slot than b (key desc, then expert asc); bitwise, no branches.
      auto first = [](const Best& a, const Best& b) {
        return (a.v > b.v) | ((a.v == b.v) & (a.i < b.i));
      };
#pragma unroll
      for (int off = G / 2; off > 0; off >>= 1) {
        const Best o1{__shfl_xor_sync(kFull, b1.v, off), __shfl_xor_sync(kFull, b1.i, off)};
        const Best o2{__shfl_xor_sync(kFull, b2.v, off), __shfl_xor_sync(kFull, b2.i, off)};
        const bool o1_b1 = first(o1, b1), b1_o2 = first(b1, o2), o1_b2 = first(o1, b2);
        const Best n2 = o1_b1 ? (b1_o2 ? b1 : o2) : (o1_b2 ? o1 : b2);
        b1 = o1_b1 ? o1 : b1;
        b2 = n2;
      }
      done = !__any_sync(kFull, live && b2.i == INT_MAX);
      if (done && live && lane < 2) {
        const int e = lane == 0 ? b1.i : b2.i;
        const float zs = row_f[e ^ swf];
        ids[t * 2 + lane] = e;
        scores[t * 2 + lane] = chosen_score(score_fn, zs, mx * kLog2e, __frcp_rn(sum));
        if (count) atomicAdd(&hist[e], 1);
      }
    }
    if (!done) {
      float k2 = -INFINITY;  // second largest, only for k > 2 on 4 or 8 lanes
      float th;
      if constexpr (kChunks) {
        static_assert(G == 4 && V4 == 4, "chunk thresholds are for 4 lanes of 4 chunks");
        float cm[4];
#pragma unroll
        for (int j = 0; j < 4; ++j)
          cm[j] = fmaxf(fmaxf(x[4 * j], x[4 * j + 1]), fmaxf(x[4 * j + 2], x[4 * j + 3]));
        th = chunk_kth4(cm, k);
      } else if (G < 16 && k > 2) {
#pragma unroll
        for (int i = 0; i < V; ++i) {
          k2 = fmaxf(k2, fminf(km, x[i]));
          km = fmaxf(km, x[i]);
        }
        th = group_threshold<G, true>(km, k2, lane, group_base, k);
      } else {
#pragma unroll
        for (int i = 0; i < V; ++i) km = fmaxf(km, x[i]);
        th = group_threshold<G, (G < 16)>(km, k2, lane, group_base, k);
      }
      unsigned mask = 0;
      // 4 lanes: a group past the last token passes no key (NaN), so the stores below need no
      // `live`; with a pointer bumped per store instead of an index (H100, N = 64 k = 8: 16.2 ->
      // 16.0 us).
      const float th_m = (kChunks || G == 4) && !live ? __int_as_float(0x7fffffff) : th;
#pragma unroll
      for (int i = 0; i < V; ++i)
        if (x[i] >= th_m) mask |= 1u << i;
      const int c = __popc(mask);
      // Inclusive prefix of the lane counts over the group, and the group's total.
      int incl = c;
#pragma unroll
      for (int off = 1; off < G; off <<= 1) {
        const int o = __shfl_up_sync(kFull, incl, off, G);
        if (lane >= off) incl += o;
      }
      const int total = __shfl_sync(kFull, incl, G - 1, G);
      const bool fallback = live && (th == -INFINITY || total < k || total > kMaxCand);
      int32_t* id_row = ids + t * k;
      float* sc_row = scores + t * k;
      const float inv_sum = __frcp_rn(sum);

      if (!__any_sync(kFull, fallback)) {
        if constexpr (kChunks || G == 4) {
          // 4 lanes (N <= 64): predicated stores of the keys in the registers (H100, N = 64,
          // k = 8: 18.5 -> 17.9 us; k = 4: 14.22-14.27 -> 13.84-13.97, from a graph within 1%);
          // the loop over the mask bits below wins at 8 lanes and more (N = 128-256, k = 2:
          // predicated stores were 6-8% slower).
          float2* p = cand + list + incl - c;
#pragma unroll
          for (int i = 0; i < V; ++i)
            if (mask >> i & 1u) {
              *p = make_float2(x[i], __int_as_float(4 * (lane + G * (i >> 2)) + (i & 3)));
              ++p;
            }
        } else if (live) {
          // The lane's candidates, in expert order, at its offset of the group's list; keys read
          // back from the row (the same float addition as x[i]).
          int pos = list + incl - c;
          while (mask) {
            const int i = __ffs(mask) - 1;
            mask &= mask - 1;
            const int e = 4 * (lane + G * (i >> 2)) + (i & 3);
            cand[pos++] = make_float2(row_f[e] + bias_f[e], __int_as_float(e));
          }
        }
        __syncwarp();
        // Slot r of the token gets the candidate of rank r (key desc, then expert asc).
        const int gslot = (warp * kTokensPerWarp + group) * 8;
        auto emit = [&](int r, int e) {
          if constexpr (kSlots) {
            slot_e[gslot + r] = e;
          } else {
            const float zs = row_f[e ^ swf];
            id_row[r] = e;
            sc_row[r] = chosen_score(score_fn, zs, mx * kLog2e, inv_sum);
            if (count) atomicAdd(&hist[e], 1);
          }
        };
        // Candidates lane + G * j of the list, j < R, ranked in one pass: R = 1 when no token of
        // the warp has more candidates than lanes, 2 (up to 8 lanes) when none has more than twice.
        const int nr = live ? total : 0;  // a group past the last token ranks nothing
        const bool strict = G >= 16 || (G == 8 && k > 2) || kChunks;
        // The four R cases are spelled out on purpose: one generic lambda over R compiled the
        // 4-lane chunk kernel differently and made N = 64 k = 8 4% slower (H100: 13.8-13.9 ->
        // 14.4 us, below the 50% line).
        if (!__any_sync(kFull, nr > G)) {
          float2 m[1];
          int r[1];
          rank_candidates<G, 1>(cand + list, nr, lane, strict, m, r);
          if (lane < nr && r[0] < k) emit(r[0], __float_as_int(m[0].y));
        } else if (G <= 8 && !__any_sync(kFull, nr > 2 * G)) {
          float2 m[2];
          int r[2];
          rank_candidates<G, 2>(cand + list, nr, lane, strict, m, r);
          if (lane < nr && r[0] < k) emit(r[0], __float_as_int(m[0].y));
          if (lane + G < nr && r[1] < k) emit(r[1], __float_as_int(m[1].y));
        } else if (kChunks && !__any_sync(kFull, nr > 3 * G)) {
          // k = 5-8 on 4 lanes: lists of 9-12 (the usual) rank 3 a lane, not 4 (H100, N = 64:
          // k = 6 14.3 -> 13.8 us).
          float2 m[3];
          int r[3];
          rank_candidates<G, 3>(cand + list, nr, lane, strict, m, r);
#pragma unroll
          for (int j = 0; j < 3; ++j)
            if (lane + G * j < nr && r[j] < k) emit(r[j], __float_as_int(m[j].y));
        } else if (kChunks && !__any_sync(kFull, nr > 4 * G)) {
          float2 m[4];
          int r[4];
          rank_candidates<G, 4>(cand + list, nr, lane, strict, m, r);
#pragma unroll
          for (int j = 0; j < 4; ++j)
            if (lane + G * j < nr && r[j] < k) emit(r[j], __float_as_int(m[j].y));
        } else if (live) {
          for (int j = lane; j < total; j += G) {
            const float2 me = cand[list + j];
            const int me_e = __float_as_int(me.y);
            int r = 0;
            for (int i = 0; i < total; ++i) {
              const float2 o = cand[list + i];
              r += (o.x > me.x) | ((o.x == me.x) & (__float_as_int(o.y) < me_e));
            }
            if (r < k) emit(r, me_e);
          }
        }
        if constexpr (kSlots) {
          __syncwarp();  // the ranks < k fill slots 0..k-1 (distinct ranks: a permutation)
          // Even k on the chunk kernel (6, 8): lane s writes slots 2s and 2s + 1 as one 8-byte
          // id store and one score store (H100, N = 64, three runs: k = 8 13.93-13.98 ->
          // 13.70-13.73 us, k = 6 12.8 -> 12.5-12.6; graph 13.3-13.45 -> 13.05).
          const bool pairs =
              kChunks && (k & 1) == 0 &&
              ((reinterpret_cast<uintptr_t>(ids) | reinterpret_cast<uintptr_t>(scores)) & 7) == 0;
          if (pairs) {
            if (live && 2 * lane < k) {
              const int2 e2 = reinterpret_cast<const int2*>(slot_e + gslot)[lane];
              reinterpret_cast<int2*>(id_row)[lane] = e2;
              reinterpret_cast<float2*>(sc_row)[lane] =
                  make_float2(chosen_score(score_fn, row_f[e2.x ^ swf], mx * kLog2e, inv_sum),
                              chosen_score(score_fn, row_f[e2.y ^ swf], mx * kLog2e, inv_sum));
              if (count) {
                atomicAdd(&hist[e2.x], 1);
                atomicAdd(&hist[e2.y], 1);
              }
            }
          } else if (live)
            for (int r = lane; r < k; r += G) {
              const int e = slot_e[gslot + r];
              id_row[r] = e;
              sc_row[r] = chosen_score(score_fn, row_f[e ^ swf], mx * kLog2e, inv_sum);
              if (count) atomicAdd(&hist[e], 1);
            }
        }
      } else {
        // Exact fallback, k rounds: the best key that comes after the previous pick in the order
        // (key descending, expert ascending). NaN keys and padding are never picked; a slot with
        // nothing left (non-finite row, reported) gets expert -1.
        float pk = INFINITY;
        int pe = -1;
        for (int s = 0; s < k; ++s) {
          Best best{0.0f, INT_MAX};
#pragma unroll
          for (int i = 0; i < V; ++i) {
            const int e = 4 * (lane + G * (i / 4)) + i % 4;
            // A lane's experts ascend with i, so an equal key never replaces the best.
            if (lane + G * (i / 4) < n4 && (x[i] < pk || (x[i] == pk && e > pe)) &&
                (best.i == INT_MAX || x[i] > best.v))
              best = Best{x[i], e};
          }
          best = group_best<G>(best);
          pk = best.i == INT_MAX ? __int_as_float(0x7fffffff) : best.v;  // NaN: nothing after
          pe = best.i;
          if (live && lane == (s & (G - 1))) {  // k may exceed G (k = 5-8 on 4 lanes)
            const int e_out = best.i == INT_MAX ? -1 : best.i;
            const float zs = e_out >= 0 ? row_f[e_out ^ swf] : 0.0f;
            id_row[s] = e_out;
            sc_row[s] = e_out < 0 ? 0.0f : chosen_score(score_fn, zs, mx * kLog2e, inv_sum);
            if (count && e_out >= 0) atomicAdd(&hist[e_out], 1);
          }
        }
      }
    }
    if (live && lse_out && lane == 0) lse_out[t] = mx + __logf(sum);
    buf = buf + 1 == kStages ? 0 : buf + 1;
    __syncwarp();  // the lists and this row buffer are rewritten by later steps
  }
  // The next kernel on the stream may launch now (its blocks take the SM slots this grid frees);
  // a kernel launched programmatically waits for this grid to finish before it reads our outputs.
  // H100: 1-1.5 us per step saved at N = 64-256 (the launch no longer waits for this grid's end);
  // triggering at the start instead let the next grid's waiting blocks take slots early (N = 64,
  // k = 8: 2.3 us slower than here).
  launch_dependents();
  if (count) {
    // kFlag: block 0 zeroed the counts at its start, long before; it was dispatched first (blocks
    // go out in index order), so this wait cannot hold it off. The acquire orders the adds below
    // (after the barrier) behind its zeros. H100 step by step, N = 64 k = 8: 15.1 -> 14.1 us
    // against the zeroing kernel; checking the flag per warp before the barrier was 2.5 us slower.
    if (kFlag && blockIdx.x != 0 && threadIdx.x == 0) {
      unsigned long long f;
      asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(f) : "l"(zflag) : "memory");
      while (f < zgen) {
        __nanosleep(64);
        asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(f) : "l"(zflag) : "memory");
      }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < n; e += blockDim.x)
      if (hist[e]) atomicAdd(&count[e], hist[e]);
  }
}

// Launches `kernel` with programmatic stream serialization (see gate_device.cuh): it may start
// before the kernel ahead of it on `stream` ends, and waits for it before touching memory.
template <typename... Params, typename... Args>
cudaError_t launch_programmatic(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shmem,
                                cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = shmem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kernel, args...);
}

template <int G, int V4, bool kChunks, bool kWhole, bool kSmall, bool kFlag>
cudaError_t launch_as(const GateParams& p, const float* logits, const float* bias, int32_t* ids,
                      float* scores, float* lse, int32_t* count, unsigned long long* nonfinite,
                      cudaStream_t stream, unsigned long long* zflag, unsigned long long zgen) {
  auto* kernel = topk_fast_kernel<G, V4, kChunks, kWhole, kSmall, kFlag>;
  constexpr int kThreads = BlockShape<G, V4, kSmall>::threads;
  constexpr int kWarps = kThreads / 32;
  constexpr int kGroups = kThreads / G;
  constexpr int kStages = BlockShape<G, V4, kSmall>::stages;
  // The bias and kStages rows per group (N floats each), and the histogram (N ints).
  auto shmem_for = [](size_t n) { return sizeof(float) * n * (1 + kStages * kGroups) + 4 * n; };
  const size_t shmem = shmem_for(p.experts);
  // Resident blocks per SM at the largest N of this instantiation; computed once, after allowing
  // that much dynamic shared memory (above 48 KiB needs the opt-in).
  static const int per_sm = [kernel, shmem_for] {
    const size_t most = shmem_for(4 * G * V4);
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(most));
    int b = 1;
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, kThreads, most);
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
  return launch_programmatic(kernel, dim3(static_cast<unsigned>(grid)), dim3(kThreads), shmem,
                             stream, p.tokens, p.experts, p.k, p.score, logits, bias, ids, scores,
                             lse, count, nonfinite, zflag, zgen);
}

// Rows that fill the lanes exactly (N = 4 * G * V4: 64, 128, 256, 512, 1024) take the kernel
// without padding guards (H100: N = 64 k = 4 14.8 -> 14.5 us, N = 128 k = 8 24.8 -> 24.1, N = 256
// k = 8 40.5 -> 37.8, N = 1024 k = 2 106.2 -> 100.9), except where the other register allocation
// is slower: 16 lanes with k <= 2 (N = 256 k = 2 34.1 -> 36.4) and 8 chunks a lane with k > 2
// (N = 1024 k = 8 110.4 -> 113.6).
template <int G, int V4, bool kChunks = false, bool kSmall = false>
cudaError_t launch(const GateParams& p, const float* logits, const float* bias, int32_t* ids,
                   float* scores, float* lse, int32_t* count, unsigned long long* nonfinite,
                   cudaStream_t stream, unsigned long long* zflag, unsigned long long zgen) {
  const bool whole = p.experts == 4 * G * V4 && !(G == 16 && p.k <= 2) && !(V4 == 8 && p.k > 2);
  if (whole && zflag)
    return launch_as<G, V4, kChunks, true, kSmall, true>(p, logits, bias, ids, scores, lse, count,
                                                         nonfinite, stream, zflag, zgen);
  if (whole)
    return launch_as<G, V4, kChunks, true, kSmall, false>(p, logits, bias, ids, scores, lse, count,
                                                          nonfinite, stream, zflag, zgen);
  if (zflag)
    return launch_as<G, V4, kChunks, false, kSmall, true>(p, logits, bias, ids, scores, lse, count,
                                                          nonfinite, stream, zflag, zgen);
  return launch_as<G, V4, kChunks, false, kSmall, false>(p, logits, bias, ids, scores, lse, count,
                                                         nonfinite, stream, zflag, zgen);
}

// Zeroing the counts without a kernel of its own (one kernel boundary less per call: H100 step by
// step 0.7-1.0 us at N = 64-256). A table of flags per device (a __device__ array, zero at module
// load) holds one slot per count buffer; each eager call gets its slot and the next generation of
// it, block 0 of the top-k kernel zeroes the counts and raises the slot's flag to that generation
// (atomicMax: a flag never goes down), and the other blocks add their counts once they see it.
// Distinct buffers never share a slot, so calls on other streams cannot release one another.
// Not in a CUDA graph being captured: a replay would reuse the captured generation, so there the
// zeroing kernel stays (and the flag's gain is smaller: 0.4-0.6 us). No slot (more than kZeroSlots
// count buffers, or a query failed): the zeroing kernel too.
constexpr int kZeroSlots = 1024;
__device__ unsigned long long g_zero_flags[kZeroSlots];

struct ZeroFlag {
  unsigned long long* flag = nullptr;  // null: use the zeroing kernel
  unsigned long long gen = 0;
};

ZeroFlag zero_flag(const int32_t* count, cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  if (capture != cudaStreamCaptureStatusNone) return {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  struct Table {
    unsigned long long* flags = nullptr;
    std::unordered_map<const int32_t*, int> slot;
    std::vector<unsigned long long> gen;
  };
  static std::mutex mu;
  static std::unordered_map<int, Table> tables;
  const std::lock_guard<std::mutex> lock(mu);
  Table& tb = tables[dev];
  if (!tb.flags) {
    if (cudaGetSymbolAddress(reinterpret_cast<void**>(&tb.flags), g_zero_flags) != cudaSuccess) {
      cudaGetLastError();
      tb.flags = nullptr;
      return {};
    }
    tb.gen.assign(kZeroSlots, 0);
  }
  auto it = tb.slot.find(count);
  if (it == tb.slot.end()) {
    if (tb.slot.size() >= size_t(kZeroSlots)) return {};
    it = tb.slot.emplace(count, int(tb.slot.size())).first;
  }
  return {tb.flags + it->second, ++tb.gen[it->second]};
}

bool aligned16(const void* ptr) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

}  // namespace

cudaError_t launch_prep(int32_t* zero_count, int experts, unsigned long long* first_nonfinite,
                        cudaStream_t stream) {
  return launch_programmatic(prep_kernel, dim3(1), dim3(256), 0, stream, zero_count, experts,
                             first_nonfinite);
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
  // Eager calls that zero the counts (and want no non-finite report, whose first atomicMin may come
  // at any step) zero them in the top-k kernel instead of in a kernel of their own, except for
  // k = 2 on 4 lanes (the merged best two, no threshold), where the flag's wait cost more than it
  // saved (H100, N = 64 k = 2: 10.6 -> 10.7-11.0 us; k = 1 and 3 gain 0.1 and 0.4).
  ZeroFlag zf;
  if (zero && !first_nonfinite && p.tokens > 0 && !(p.experts > 32 && p.experts <= 64 && p.k == 2))
    zf = zero_flag(expert_count, stream);
  unsigned long long* zflag = zf.flag;
  const unsigned long long zgen = zf.gen;
  if (zflag) zero = nullptr;
  const bool prep = zero || first_nonfinite;
  if (prep) {
    const cudaError_t rc = launch_prep(zero, p.experts, first_nonfinite, stream);
    if (rc != cudaSuccess) return rc;
  }
  if (p.tokens == 0) return cudaSuccess;
  const int n = p.experts;
#define TAMOE_FAST(G, V4)                                                                       \
  return launch<G, V4>(p, logits, bias, expert_ids, scores, lse, expert_count, first_nonfinite, \
                       stream, zflag, zgen)
  // Lanes per token: few lanes (many tokens per warp) share the per-token shuffles among the most
  // keys, as long as the lanes' top-2 values still give a tight threshold (4 lanes: k <= 4); above
  // 128 experts 16 or 32 lanes keep the chunks per lane (registers) at 4 or 8. H100, N = 64: 4
  // lanes instead of 8 took k = 2 from 16.3 to 15.0 us and k = 4 from 18.3 to 16.7 us.
  if (n <= 32) TAMOE_FAST(8, 1);
  if (n <= 64) {
    // Four lanes (eight tokens per warp) while their top-2 values still bound k tightly; blocks of
    // 128 threads from k = 4 on (BlockShape).
    if (p.k <= 3) TAMOE_FAST(4, 4);
    if (p.k <= 4)
      return launch<4, 4, false, true>(p, logits, bias, expert_ids, scores, lse, expert_count,
                                       first_nonfinite, stream, zflag, zgen);
    return launch<4, 4, true, true>(p, logits, bias, expert_ids, scores, lse, expert_count,
                                    first_nonfinite, stream, zflag, zgen);
  }
  if (n <= 128) TAMOE_FAST(8, 4);
  if (n <= 256) TAMOE_FAST(16, 4);
  if (n <= 512) TAMOE_FAST(32, 4);
  TAMOE_FAST(32, 8);
#undef TAMOE_FAST
}

}  // namespace tamoe::kernels::detail
