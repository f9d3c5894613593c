#include <math_constants.h>

#include "train/gpu/train_kernels.h"

namespace tamoe::train::gpu {

namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = 8;  // row kernels: one warp per row

int blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 4096 ? (b < 1 ? 1 : b) : 4096);
}

__device__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__global__ void gelu_fwd_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  const float inv_sqrt2 = 0.70710678118654752f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + erff(v * inv_sqrt2));
  }
}

__global__ void gelu_bwd_kernel(const float* __restrict__ x, const float* __restrict__ dy,
                                float* __restrict__ dx, int64_t n) {
  const float inv_sqrt2 = 0.70710678118654752f;
  const float inv_sqrt2pi = 0.39894228040143268f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    const float d = 0.5f * (1.0f + erff(v * inv_sqrt2)) + v * inv_sqrt2pi * expf(-0.5f * v * v);
    dx[i] = dy[i] * d;
  }
}

__global__ void add_row_bias_kernel(float* __restrict__ y, const float* __restrict__ b,
                                    int64_t rows, int cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += b[i % cols];
}

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = a[i] + b[i];
}

// Column sums with a 32 x 8 block: 32 columns, 8 row groups reduced in a fixed order. With
// `other` set it sums x * other (the LayerNorm's dgamma) into out2 as well as x into out.
__global__ void col_sums_kernel(const float* __restrict__ x, const float* __restrict__ other,
                                int64_t rows, int cols, float* __restrict__ out,
                                float* __restrict__ out2) {
  __shared__ float s1[8][33], s2[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float a = 0, b = 0;
  if (c < cols)
    for (int64_t r = threadIdx.y; r < rows; r += 8) {
      const float v = x[r * cols + c];
      a += v;
      if (other) b += v * other[r * cols + c];
    }
  s1[threadIdx.y][threadIdx.x] = a;
  s2[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float t1 = 0, t2 = 0;
    for (int j = 0; j < 8; ++j) {
      t1 += s1[j][threadIdx.x];
      t2 += s2[j][threadIdx.x];
    }
    out[c] += t1;
    if (other) out2[c] += t2;
  }
}

__global__ void layernorm_fwd_kernel(const float* __restrict__ x, const float* __restrict__ gamma,
                                     const float* __restrict__ beta, int64_t rows, int cols,
                                     float eps, float* __restrict__ y, float* __restrict__ xhat,
                                     float* __restrict__ rstd) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float* xr = x + r * cols;
  const float inv_d = 1.0f / static_cast<float>(cols);
  float s = 0;
  for (int c = lane; c < cols; c += 32) s += xr[c];
  const float mean = warp_sum(s) * inv_d;
  float q = 0;
  for (int c = lane; c < cols; c += 32) {
    const float d = xr[c] - mean;
    q += d * d;
  }
  const float rs = 1.0f / sqrtf(warp_sum(q) * inv_d + eps);
  for (int c = lane; c < cols; c += 32) {
    const float h = (xr[c] - mean) * rs;
    xhat[r * cols + c] = h;
    y[r * cols + c] = h * gamma[c] + beta[c];
  }
  if (lane == 0) rstd[r] = rs;
}

__global__ void layernorm_bwd_kernel(const float* __restrict__ dy, const float* __restrict__ xhat,
                                     const float* __restrict__ rstd,
                                     const float* __restrict__ gamma, int64_t rows, int cols,
                                     float* __restrict__ dx) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float inv_d = 1.0f / static_cast<float>(cols);
  float sg = 0, sgx = 0;
  for (int c = lane; c < cols; c += 32) {
    const float g = dy[r * cols + c] * gamma[c];
    sg += g;
    sgx += g * xhat[r * cols + c];
  }
  const float mean_g = warp_sum(sg) * inv_d;
  const float mean_gx = warp_sum(sgx) * inv_d;
  const float rs = rstd[r];
  for (int c = lane; c < cols; c += 32) {
    const float g = dy[r * cols + c] * gamma[c];
    dx[r * cols + c] = rs * (g - mean_g - xhat[r * cols + c] * mean_gx);
  }
}

__global__ void softmax_ce_kernel(const float* __restrict__ logits,
                                  const int32_t* __restrict__ labels, int64_t rows, int classes,
                                  double* __restrict__ loss_row, int32_t* __restrict__ correct,
                                  float* __restrict__ grad) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float* z = logits + r * classes;
  // Arg max with the lower class on ties, which also gives the max.
  float best = -CUDART_INF_F;
  int arg = classes;
  for (int c = lane; c < classes; c += 32)
    if (z[c] > best || (z[c] == best && c < arg)) {
      best = z[c];
      arg = c;
    }
  for (int o = 16; o > 0; o >>= 1) {
    const float ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int oa = __shfl_xor_sync(0xffffffffu, arg, o);
    if (ob > best || (ob == best && oa < arg)) {
      best = ob;
      arg = oa;
    }
  }
  float s = 0;
  for (int c = lane; c < classes; c += 32) s += expf(z[c] - best);
  s = warp_sum(s);
  const int y = labels[r];
  const bool ok = y >= 0 && y < classes;
  const float inv_n = 1.0f / static_cast<float>(rows);
  for (int c = lane; c < classes; c += 32)
    grad[r * classes + c] = expf(z[c] - best) * (inv_n / s) - (c == y ? inv_n : 0.0f);
  if (lane == 0) {
    loss_row[r] = ok ? log(static_cast<double>(s)) - static_cast<double>(z[y] - best) : CUDART_NAN;
    correct[r] = ok ? (arg == y ? 1 : 0) : -1;
  }
}

__global__ void gate_softmax_bwd_kernel(const float* __restrict__ logits,
                                        const float* __restrict__ lse,
                                        const int32_t* __restrict__ ids,
                                        const float* __restrict__ dw,
                                        const float* __restrict__ aux_grad, float aux_weight,
                                        int64_t tokens, int experts, int k,
                                        float* __restrict__ dlogits) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (t >= tokens) return;
  const float* z = logits + t * experts;
  const float l = lse[t];
  float dot = 0;
  for (int e = lane; e < experts; e += 32) {
    float dp = 0;
    for (int i = 0; i < k; ++i)
      if (ids[t * k + i] == e) dp += dw[t * k + i];
    dot += expf(z[e] - l) * dp;
  }
  dot = warp_sum(dot);
  for (int e = lane; e < experts; e += 32) {
    float dp = 0;
    for (int i = 0; i < k; ++i)
      if (ids[t * k + i] == e) dp += dw[t * k + i];
    float g = expf(z[e] - l) * (dp - dot);
    if (aux_grad) g += aux_weight * aux_grad[t * experts + e];
    dlogits[t * experts + e] = g;
  }
}

__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ grad,
                            float* __restrict__ m, float* __restrict__ v, int64_t n, AdamStep s) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = grad[i] * s.grad_scale;
    float pi = p[i] * s.decay;
    const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * g;
    const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
    pi -= s.step_size * mi / (sqrtf(vi) * s.inv_sqrt_bc2 + s.eps);
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
  }
}

int row_blocks(int64_t rows) {
  return static_cast<int>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

cudaError_t gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  gelu_fwd_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t gelu_backward(const float* x, const float* dy, float* dx, int64_t n,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  gelu_bwd_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, dy, dx, n);
  return cudaGetLastError();
}

cudaError_t add_row_bias(float* y, const float* b, int64_t rows, int cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  add_row_bias_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(y, b, rows, cols);
  return cudaGetLastError();
}

cudaError_t add_col_sums(const float* x, int64_t rows, int cols, float* out, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  col_sums_kernel<<<(cols + 31) / 32, dim3(32, 8), 0, stream>>>(x, nullptr, rows, cols, out,
                                                                nullptr);
  return cudaGetLastError();
}

cudaError_t add(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(a, b, y, n);
  return cudaGetLastError();
}

cudaError_t layernorm_forward(const float* x, const float* gamma, const float* beta, int64_t rows,
                              int cols, float eps, float* y, float* xhat, float* rstd,
                              cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  layernorm_fwd_kernel<<<row_blocks(rows), 32 * kWarpsPerBlock, 0, stream>>>(
      x, gamma, beta, rows, cols, eps, y, xhat, rstd);
  return cudaGetLastError();
}

cudaError_t layernorm_backward(const float* dy, const float* xhat, const float* rstd,
                               const float* gamma, int64_t rows, int cols, float* dx, float* dgamma,
                               float* dbeta, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  col_sums_kernel<<<(cols + 31) / 32, dim3(32, 8), 0, stream>>>(dy, xhat, rows, cols, dbeta,
                                                                dgamma);
  layernorm_bwd_kernel<<<row_blocks(rows), 32 * kWarpsPerBlock, 0, stream>>>(dy, xhat, rstd, gamma,
                                                                             rows, cols, dx);
  return cudaGetLastError();
}

cudaError_t softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t rows,
                                  int classes, double* loss_row, int32_t* correct, float* grad,
                                  cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  softmax_ce_kernel<<<row_blocks(rows), 32 * kWarpsPerBlock, 0, stream>>>(
      logits, labels, rows, classes, loss_row, correct, grad);
  return cudaGetLastError();
}

cudaError_t gate_softmax_backward(const float* logits, const float* lse, const int32_t* expert_ids,
                                  const float* dw, const float* aux_grad, float aux_weight,
                                  int64_t tokens, int experts, int k, float* dlogits,
                                  cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  gate_softmax_bwd_kernel<<<row_blocks(tokens), 32 * kWarpsPerBlock, 0, stream>>>(
      logits, lse, expert_ids, dw, aux_grad, aux_weight, tokens, experts, k, dlogits);
  return cudaGetLastError();
}

cudaError_t adam_step(float* p, const float* grad, float* m, float* v, int64_t n, const AdamStep& s,
                      cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  adam_kernel<<<blocks_for(n), kThreads, 0, stream>>>(p, grad, m, v, n, s);
  return cudaGetLastError();
}

}  // namespace tamoe::train::gpu
