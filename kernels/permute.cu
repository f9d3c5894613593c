#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/permute.h"

namespace tamoe::kernels {

namespace {

constexpr int kThreads = 256;

// One block per global expert: a block-wide stable prefix count of the matching slots.
__global__ void slot_rank_kernel(const int32_t* ids, int64_t slots, int64_t* slot_row,
                                 int64_t* count) {
  const int e = blockIdx.x;
  __shared__ int warp_sums[kThreads / 32];
  __shared__ int64_t base;
  if (threadIdx.x == 0) base = 0;
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t start = 0; start < slots; start += blockDim.x) {
    int64_t s = start + threadIdx.x;
    bool hit = s < slots && ids[s] == e;
    unsigned mask = __ballot_sync(0xffffffffu, hit);
    int in_warp = __popc(mask & ((1u << lane) - 1u));
    if (lane == 0) warp_sums[warp] = __popc(mask);
    __syncthreads();
    int before = 0, total = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) {
      if (w < warp) before += warp_sums[w];
      total += warp_sums[w];
    }
    if (hit) slot_row[s] = base + before + in_warp;
    __syncthreads();
    if (threadIdx.x == 0) base += total;
    __syncthreads();
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

template <typename V>
__device__ void copy_row(const char* src, char* dst, int64_t row_bytes) {
  const V* s = reinterpret_cast<const V*>(src);
  V* d = reinterpret_cast<V*>(dst);
  for (int64_t i = threadIdx.x; i < row_bytes / static_cast<int64_t>(sizeof(V)); i += blockDim.x)
    d[i] = s[i];
}

// One block per slot (grid-strided).
__global__ void permute_rows_kernel(const char* x, const int64_t* slot_row, int64_t slots, int k,
                                    int64_t row_bytes, char* send, bool vec16) {
  for (int64_t s = blockIdx.x; s < slots; s += gridDim.x) {
    int64_t row = slot_row[s];
    if (row < 0) continue;
    const char* src = x + (s / k) * row_bytes;
    char* dst = send + row * row_bytes;
    if (vec16)
      copy_row<uint4>(src, dst, row_bytes);
    else
      copy_row<char>(src, dst, row_bytes);
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
      copy_row<uint4>(s, d, row_bytes);
    else
      copy_row<char>(s, d, row_bytes);
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
  slot_rank_kernel<<<nexperts, kThreads, 0, stream>>>(expert_ids, slots, slot_row, expert_count);
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
  permute_rows_kernel<<<grid_for(slots), kThreads, 0, stream>>>(
      static_cast<const char*>(x), slot_row, slots, k, row_bytes, static_cast<char*>(send),
      aligned16(x, send, row_bytes));
  return cudaGetLastError();
}

cudaError_t unpermute_combine(const void* rows, const int64_t* slot_row, const float* weights,
                              int64_t tokens, int k, int64_t hidden, int dtype, void* out,
                              cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  int g = grid_for(tokens);
  switch (dtype) {
    case kPermF32:
      unpermute_kernel<<<g, kThreads, 0, stream>>>(static_cast<const float*>(rows), slot_row,
                                                   weights, tokens, k, hidden,
                                                   static_cast<float*>(out));
      break;
    case kPermF64:
      unpermute_kernel<<<g, kThreads, 0, stream>>>(static_cast<const double*>(rows), slot_row,
                                                   weights, tokens, k, hidden,
                                                   static_cast<double*>(out));
      break;
    case kPermBF16:
      unpermute_kernel<<<g, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(rows),
                                                   slot_row, weights, tokens, k, hidden,
                                                   static_cast<__nv_bfloat16*>(out));
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
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
  dim3 grid(static_cast<unsigned>(nblocks), 32);
  copy_blocks_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const char*>(src),
                                                    static_cast<char*>(dst), from, to, count,
                                                    row_bytes, aligned16(src, dst, row_bytes));
  return cudaGetLastError();
}

}  // namespace tamoe::kernels
