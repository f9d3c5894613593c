// Balance loss (sum_e w_e p_e) + z-loss, forward and backward, deterministic (no float atomics).
#include "kernels/gate_device.cuh"

namespace tamoe::kernels {

namespace {

using detail::kFull;

constexpr int kWarps = 8;
constexpr int kReduceThreads = 1024;

// One warp per token: softmax, the token's share of the loss, and its gradient row.
__global__ void __launch_bounds__(kWarps * 32)
    aux_token_kernel(const float* __restrict__ logits, int64_t tokens, int n,
                     const float* __restrict__ w, float z_weight, float* __restrict__ token_loss,
                     float* __restrict__ grad) {
  const int lane = threadIdx.x & 31;
  const float inv_s = 1.0f / static_cast<float>(tokens);
  for (int64_t t = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); t < tokens;
       t += int64_t(gridDim.x) * kWarps) {
    const float* row = logits + t * n;
    float mx = -INFINITY;
    for (int e = lane; e < n; e += 32) mx = fmaxf(mx, row[e]);
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, off));
    float sum = 0.0f, pw = 0.0f;
    for (int e = lane; e < n; e += 32) {
      const float x = expf(row[e] - mx);
      sum += x;
      if (w) pw += x * w[e];
    }
    for (int off = 16; off > 0; off >>= 1) {
      sum += __shfl_xor_sync(kFull, sum, off);
      pw += __shfl_xor_sync(kFull, pw, off);
    }
    pw /= sum;  // sum_e P(t,e) w_e
    const float lse = mx + logf(sum);
    if (lane == 0) token_loss[t] = (pw + z_weight * lse * lse) * inv_s;
    if (grad) {
      for (int e = lane; e < n; e += 32) {
        const float prob = expf(row[e] - mx) / sum;
        const float we = w ? w[e] : 0.0f;
        grad[t * n + e] = prob * ((we - pw) + 2.0f * z_weight * lse) * inv_s;
      }
    }
  }
}

// Fixed-order sum of the per-token losses in one block.
__global__ void sum_kernel(const float* __restrict__ v, int64_t n, float* out) {
  __shared__ float part[kReduceThreads];
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kReduceThreads) s += v[i];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int half = kReduceThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = part[0];
}

__global__ void weights_kernel(const int32_t* __restrict__ count, int n, float inv_copies,
                               const float* __restrict__ target, float* w) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
    const float f = static_cast<float>(count[e]) * inv_copies;
    w[e] = target ? f / target[e] : f * static_cast<float>(n);
  }
}

}  // namespace

cudaError_t balance_weights(const int32_t* expert_count, int experts, int64_t copies,
                            const float* target, float* w, cudaStream_t stream) {
  if (experts < 1 || copies < 0) return cudaErrorInvalidValue;
  const float inv = copies > 0 ? 1.0f / static_cast<float>(copies) : 0.0f;
  weights_kernel<<<(experts + 255) / 256, 256, 0, stream>>>(expert_count, experts, inv, target, w);
  return cudaGetLastError();
}

cudaError_t aux_loss(const float* logits, int64_t tokens, int experts, const float* w,
                     float z_weight, float* loss, float* grad, float* workspace,
                     cudaStream_t stream) {
  if (tokens < 0 || experts < 1 || !loss) return cudaErrorInvalidValue;
  if (tokens == 0) return cudaMemsetAsync(loss, 0, sizeof(float), stream);
  if (!workspace) return cudaErrorInvalidValue;
  int dev = 0, sms = 132;
  if (cudaGetDevice(&dev) == cudaSuccess)
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const int64_t want = (tokens + kWarps - 1) / kWarps;
  const int grid = static_cast<int>(want < int64_t(sms) * 16 ? want : int64_t(sms) * 16);
  aux_token_kernel<<<grid, kWarps * 32, 0, stream>>>(logits, tokens, experts, w, z_weight,
                                                     workspace, grad);
  sum_kernel<<<1, kReduceThreads, 0, stream>>>(workspace, tokens, loss);
  return cudaGetLastError();
}

}  // namespace tamoe::kernels
