#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/permute.h"

namespace tamoe::kernels {

namespace {

constexpr int kThreads = 256;

// One block per global expert: a block-wide stable prefix count of the matching slots. Each
// thread takes kRankPer consecutive slots of a tile so a 32K-slot step needs few tiles (each tile
// costs a barrier round; one slot per thread made this latency-bound at ~100 us).
constexpr int kRankThreads = 1024, kRankPer = 4;
__global__ void slot_rank_kernel(const int32_t* ids, int64_t slots, int64_t* slot_row,
                                 int64_t* count) {
  const int e = blockIdx.x;
  __shared__ int warp_sums[kRankThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = static_cast<int>(blockDim.x >> 5);
  int64_t base = 0;
  for (int64_t start = 0; start < slots; start += static_cast<int64_t>(blockDim.x) * kRankPer) {
    const int64_t s0 = start + static_cast<int64_t>(threadIdx.x) * kRankPer;
    bool hit[kRankPer];
    int mine = 0;
#pragma unroll
    for (int u = 0; u < kRankPer; ++u) {
      hit[u] = s0 + u < slots && ids[s0 + u] == e;
      mine += hit[u];
    }
    int incl = mine;  // inclusive scan over the warp
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      int v = __shfl_up_sync(0xffffffffu, incl, off);
      if (lane >= off) incl += v;
    }
    if (lane == 31) warp_sums[warp] = incl;
    __syncthreads();
    int before = 0, total = 0;
    for (int w = 0; w < nwarps; ++w) {
      const int v = warp_sums[w];
      if (w < warp) before += v;
      total += v;
    }
    int r = before + incl - mine;
#pragma unroll
    for (int u = 0; u < kRankPer; ++u)
      if (hit[u]) slot_row[s0 + u] = base + r++;
    base += total;
    __syncthreads();  // warp_sums is rewritten by the next tile
  }
  if (threadIdx.x == 0) count[e] = base;
}

__global__ void exclusive_scan_kernel(const int64_t* count, int n, int64_t* offset) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  int64_t run = 0;
  for (int i = 0; i < n; ++i) {
    offset[i] = run;
    run += count[i];
  }
}

__global__ void add_offset_kernel(const int32_t* ids, int64_t slots, const int64_t* offset,
                                  int64_t* slot_row) {
  for (int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; s < slots;
       s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int32_t e = ids[s];
    slot_row[s] = e >= 0 ? slot_row[s] + offset[e] : -1;
  }
}

// Byte-wise row copy for rows that are not 16-byte aligned (rare: odd hidden sizes).
__device__ void copy_row_bytes(const char* src, char* dst, int64_t row_bytes) {
  for (int64_t i = threadIdx.x; i < row_bytes; i += blockDim.x) dst[i] = src[i];
}

// 16-byte row copy with kUnroll independent loads in flight per thread before the stores: one
// load at a time per thread leaves HBM latency uncovered at these row sizes (a 14 KiB row is
// only 3.5 vectors per thread of a 256-thread block).
constexpr int kUnroll = 4;
template <bool kStreamStore>
__device__ void copy_row16(const uint4* __restrict__ src, uint4* __restrict__ dst, int64_t n) {
  for (int64_t base = threadIdx.x; base < n; base += static_cast<int64_t>(blockDim.x) * kUnroll) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t i = base + static_cast<int64_t>(u) * blockDim.x;
      if (i < n) v[u] = __ldg(src + i);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      int64_t i = base + static_cast<int64_t>(u) * blockDim.x;
      if (i < n) {
        if (kStreamStore)
          __stcs(dst + i, v[u]);
        else
          dst[i] = v[u];
      }
    }
  }
}

// One block per token (grid-strided): each 16-byte vector of x[t] is loaded once and stored to
// the token's k send rows, so x is read from memory once instead of k times. Streaming stores:
// the send rows are read next by NCCL, not by this kernel, and should not push x out of L2.
constexpr int kRowThreads = 128;
__global__ void permute_rows16_kernel(const uint4* __restrict__ x,
                                      const int64_t* __restrict__ slot_row, int64_t tokens, int k,
                                      int64_t vecs, uint4* __restrict__ send) {
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x)
    for (int64_t base = threadIdx.x; base < vecs;
         base += static_cast<int64_t>(blockDim.x) * kUnroll) {
      uint4 v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        int64_t i = base + static_cast<int64_t>(u) * blockDim.x;
        if (i < vecs) v[u] = __ldg(x + t * vecs + i);
      }
      for (int j = 0; j < k; ++j) {
        const int64_t row = __ldg(slot_row + t * k + j);
        if (row < 0) continue;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          int64_t i = base + static_cast<int64_t>(u) * blockDim.x;
          if (i < vecs) __stcs(send + row * vecs + i, v[u]);
        }
      }
    }
}

// Unaligned fallback: one block per slot (grid-strided), byte copies.
__global__ void permute_rows_kernel(const char* x, const int64_t* slot_row, int64_t slots, int k,
                                    int64_t row_bytes, char* send) {
  for (int64_t s = blockIdx.x; s < slots; s += gridDim.x) {
    int64_t row = slot_row[s];
    if (row < 0) continue;
    copy_row_bytes(x + (s / k) * row_bytes, send + row * row_bytes, row_bytes);
  }
}

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};
template <typename T>
__device__ typename Acc<T>::type load(const T* p, int64_t i) {
  return static_cast<typename Acc<T>::type>(p[i]);
}
template <>
__device__ float load<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
template <typename T>
__device__ void store(T* p, int64_t i, typename Acc<T>::type v) {
  p[i] = static_cast<T>(v);
}
template <>
__device__ void store<__nv_bfloat16>(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16(v);
}

// One block per token (grid-strided), threads over the hidden dimension.
template <typename T>
__global__ void unpermute_kernel(const T* rows, const int64_t* slot_row, const float* w,
                                 int64_t tokens, int k, int64_t hidden, T* out) {
  using A = typename Acc<T>::type;
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x)
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
      A acc = 0;
      for (int i = 0; i < k; ++i) {
        int64_t row = slot_row[t * k + i];
        if (row < 0) continue;
        A wi = w ? static_cast<A>(w[t * k + i]) : A(1);
        acc += wi * load(rows, row * hidden + c);
      }
      store(out, t * hidden + c, acc);
    }
}

// 16 bytes of T as accumulators: unpack-add and pack for the vectorized un-permute.
template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  static constexpr int n = 4;
  __device__ static void add(float* acc, const uint4& u, float w) {
    acc[0] += w * __uint_as_float(u.x);
    acc[1] += w * __uint_as_float(u.y);
    acc[2] += w * __uint_as_float(u.z);
    acc[3] += w * __uint_as_float(u.w);
  }
  __device__ static uint4 pack(const float* a) {
    return make_uint4(__float_as_uint(a[0]), __float_as_uint(a[1]), __float_as_uint(a[2]),
                      __float_as_uint(a[3]));
  }
};
template <>
struct Lanes<double> {
  static constexpr int n = 2;
  __device__ static void add(double* acc, const uint4& u, double w) {
    acc[0] += w * __hiloint2double(static_cast<int>(u.y), static_cast<int>(u.x));
    acc[1] += w * __hiloint2double(static_cast<int>(u.w), static_cast<int>(u.z));
  }
  __device__ static uint4 pack(const double* a) {
    return make_uint4(
        static_cast<unsigned>(__double2loint(a[0])), static_cast<unsigned>(__double2hiint(a[0])),
        static_cast<unsigned>(__double2loint(a[1])), static_cast<unsigned>(__double2hiint(a[1])));
  }
};
template <>
struct Lanes<__nv_bfloat16> {
  static constexpr int n = 8;
  // bf16 -> f32 is exact: the 16 bits become the high half of the float.
  __device__ static void add2(float* acc, unsigned word, float w) {
    acc[0] += w * __uint_as_float(word << 16);
    acc[1] += w * __uint_as_float(word & 0xffff0000u);
  }
  __device__ static void add(float* acc, const uint4& u, float w) {
    add2(acc, u.x, w);
    add2(acc + 2, u.y, w);
    add2(acc + 4, u.z, w);
    add2(acc + 6, u.w, w);
  }
  __device__ static unsigned pack2(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);  // round to nearest even, like the host
    return static_cast<unsigned>(__bfloat16_as_ushort(h.x)) |
           (static_cast<unsigned>(__bfloat16_as_ushort(h.y)) << 16);
  }
  __device__ static uint4 pack(const float* a) {
    return make_uint4(pack2(a[0], a[1]), pack2(a[2], a[3]), pack2(a[4], a[5]), pack2(a[6], a[7]));
  }
};

// One block per token (grid-strided), one 16-byte vector per thread and step; the token's k row
// indices and weights sit in shared memory, and the k loads of a vector are issued four at a
// time before their sums so that several rows are in flight per thread.
template <typename T>
__global__ void unpermute16_kernel(const uint4* __restrict__ rows,
                                   const int64_t* __restrict__ slot_row,
                                   const float* __restrict__ w, int64_t tokens, int k, int64_t vecs,
                                   uint4* __restrict__ out) {
  using A = typename Acc<T>::type;
  constexpr int L = Lanes<T>::n;
  extern __shared__ int64_t srow[];  // [k] rows, then [k] float weights
  float* sw = reinterpret_cast<float*>(srow + k);
  for (int64_t t = blockIdx.x; t < tokens; t += gridDim.x) {
    __syncthreads();
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
      srow[i] = slot_row[t * k + i];
      sw[i] = w ? w[t * k + i] : 1.0f;
    }
    __syncthreads();
    for (int64_t c = threadIdx.x; c < vecs; c += blockDim.x) {
      A acc[L];
#pragma unroll
      for (int j = 0; j < L; ++j) acc[j] = 0;
      for (int i0 = 0; i0 < k; i0 += 4) {
        uint4 v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int i = i0 + u;
          v[u] =
              (i < k && srow[i] >= 0) ? __ldg(rows + srow[i] * vecs + c) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          const int i = i0 + u;
          if (i < k && srow[i] >= 0) Lanes<T>::add(acc, v[u], static_cast<A>(sw[i]));
        }
      }
      out[t * vecs + c] = Lanes<T>::pack(acc);
    }
  }
}

// One block per slot: scaled scatter plus a block reduction for the weight gradient.
template <typename T>
__global__ void combine_bwd_kernel(const T* grad_out, const T* rows, const int64_t* slot_row,
                                   const float* w, int64_t slots, int k, int64_t hidden, T* send,
                                   float* grad_w) {
  using A = typename Acc<T>::type;
  __shared__ A partial[kThreads];
  for (int64_t s = blockIdx.x; s < slots; s += gridDim.x) {
    int64_t row = slot_row[s];
    A dot = 0;
    if (row >= 0) {
      int64_t t = s / k;
      A wi = static_cast<A>(w[s]);
      for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
        A g = load(grad_out, t * hidden + c);
        store(send, row * hidden + c, wi * g);
        dot += g * load(rows, row * hidden + c);
      }
    }
    partial[threadIdx.x] = dot;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) grad_w[s] = static_cast<float>(partial[0]);
    __syncthreads();
  }
}

// grid.x over blocks, grid.y splits a block's rows.
__global__ void copy_blocks_kernel(const char* src, char* dst, const int64_t* from,
                                   const int64_t* to, const int64_t* count, int64_t row_bytes,
                                   bool vec16) {
  const int b = blockIdx.x;
  const int64_t n = count[b];
  for (int64_t r = blockIdx.y; r < n; r += gridDim.y) {
    const char* s = src + (from[b] + r) * row_bytes;
    char* d = dst + (to[b] + r) * row_bytes;
    if (vec16)
      copy_row16<false>(reinterpret_cast<const uint4*>(s), reinterpret_cast<uint4*>(d),
                        row_bytes / 16);
    else
      copy_row_bytes(s, d, row_bytes);
  }
}

int grid_for(int64_t items) {
  return static_cast<int>(items < 65535 ? (items > 0 ? items : 1) : 65535);
}

bool aligned16(const void* a, const void* b, int64_t row_bytes) {
  return row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(a) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(b) % 16 == 0;
}

}  // namespace

size_t permute_slots_workspace_bytes(int nexperts) {
  return static_cast<size_t>(nexperts > 0 ? nexperts : 1) * sizeof(int64_t);
}

cudaError_t permute_slots(const int32_t* expert_ids, int64_t slots, int nexperts, int64_t* slot_row,
                          int64_t* expert_count, void* workspace, cudaStream_t stream) {
  if (nexperts <= 0 || slots < 0) return cudaErrorInvalidValue;
  auto* offset = static_cast<int64_t*>(workspace);
  slot_rank_kernel<<<nexperts, kRankThreads, 0, stream>>>(expert_ids, slots, slot_row,
                                                          expert_count);
  exclusive_scan_kernel<<<1, 32, 0, stream>>>(expert_count, nexperts, offset);
  if (slots > 0)
    add_offset_kernel<<<grid_for((slots + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        expert_ids, slots, offset, slot_row);
  return cudaGetLastError();
}

cudaError_t permute_rows(const void* x, const int64_t* slot_row, int64_t tokens, int k,
                         int64_t row_bytes, void* send, cudaStream_t stream) {
  int64_t slots = tokens * k;
  if (slots == 0 || row_bytes == 0) return cudaSuccess;
  if (aligned16(x, send, row_bytes))
    permute_rows16_kernel<<<grid_for(tokens), kRowThreads, 0, stream>>>(
        static_cast<const uint4*>(x), slot_row, tokens, k, row_bytes / 16,
        static_cast<uint4*>(send));
  else
    permute_rows_kernel<<<grid_for(slots), kThreads, 0, stream>>>(
        static_cast<const char*>(x), slot_row, slots, k, row_bytes, static_cast<char*>(send));
  return cudaGetLastError();
}

namespace {

template <typename T>
cudaError_t launch_unpermute(const void* rows, const int64_t* slot_row, const float* weights,
                             int64_t tokens, int k, int64_t hidden, void* out,
                             cudaStream_t stream) {
  const int64_t row_bytes = hidden * static_cast<int64_t>(sizeof(T));
  if (aligned16(rows, out, row_bytes)) {
    const size_t shm = static_cast<size_t>(k) * (sizeof(int64_t) + sizeof(float));
    if (shm > 48 * 1024) return cudaErrorInvalidValue;  // k > 4096
    unpermute16_kernel<T><<<grid_for(tokens), kRowThreads, shm, stream>>>(
        static_cast<const uint4*>(rows), slot_row, weights, tokens, k, row_bytes / 16,
        static_cast<uint4*>(out));
  } else {
    unpermute_kernel<<<grid_for(tokens), kThreads, 0, stream>>>(
        static_cast<const T*>(rows), slot_row, weights, tokens, k, hidden, static_cast<T*>(out));
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t unpermute_combine(const void* rows, const int64_t* slot_row, const float* weights,
                              int64_t tokens, int k, int64_t hidden, int dtype, void* out,
                              cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  switch (dtype) {
    case kPermF32:
      return launch_unpermute<float>(rows, slot_row, weights, tokens, k, hidden, out, stream);
    case kPermF64:
      return launch_unpermute<double>(rows, slot_row, weights, tokens, k, hidden, out, stream);
    case kPermBF16:
      return launch_unpermute<__nv_bfloat16>(rows, slot_row, weights, tokens, k, hidden, out,
                                             stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t combine_backward_scatter(const void* grad_out, const void* rows,
                                     const int64_t* slot_row, const float* weights, int64_t tokens,
                                     int k, int64_t hidden, int dtype, void* send,
                                     float* grad_weights, cudaStream_t stream) {
  int64_t slots = tokens * k;
  if (slots == 0) return cudaSuccess;
  int g = grid_for(slots);
  switch (dtype) {
    case kPermF32:
      combine_bwd_kernel<<<g, kThreads, 0, stream>>>(
          static_cast<const float*>(grad_out), static_cast<const float*>(rows), slot_row, weights,
          slots, k, hidden, static_cast<float*>(send), grad_weights);
      break;
    case kPermF64:
      combine_bwd_kernel<<<g, kThreads, 0, stream>>>(
          static_cast<const double*>(grad_out), static_cast<const double*>(rows), slot_row, weights,
          slots, k, hidden, static_cast<double*>(send), grad_weights);
      break;
    case kPermBF16:
      combine_bwd_kernel<<<g, kThreads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(grad_out), static_cast<const __nv_bfloat16*>(rows),
          slot_row, weights, slots, k, hidden, static_cast<__nv_bfloat16*>(send), grad_weights);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t copy_row_blocks(const void* src, void* dst, const int64_t* from, const int64_t* to,
                            const int64_t* count, int nblocks, int64_t row_bytes,
                            cudaStream_t stream) {
  if (nblocks == 0 || row_bytes == 0) return cudaSuccess;
  // The counts are on the device, so the split of each block assumes about 8192 row-copying CTAs
  // in all (several waves on an H100/H200) and at least 32 per block.
  const unsigned split = static_cast<unsigned>(std::clamp(8192 / nblocks, 32, 65535));
  dim3 grid(static_cast<unsigned>(nblocks), split);
  copy_blocks_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const char*>(src),
                                                    static_cast<char*>(dst), from, to, count,
                                                    row_bytes, aligned16(src, dst, row_bytes));
  return cudaGetLastError();
}

}  // namespace tamoe::kernels
