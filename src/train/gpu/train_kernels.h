// CUDA kernels of tamoe-train's GPU path that the library's kernels/ do not have: GELU, LayerNorm,
// bias add and column sums, softmax cross-entropy, the gate's softmax backward and Adam. Each
// mirrors the host code in src/train (layers.cc, loss.cc, optimizer.cc, moe/moe_layer.cc) in
// fp32; tests/unit/train_gpu checks them against double-precision host references.
//
// Raw device pointers, row-major matrices (rows x cols), asynchronous on `stream`; every launcher
// returns the launch status and accepts 0 rows.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tamoe::train::gpu {

// y = gelu(x) = x * Phi(x) (erf form), n elements.
cudaError_t gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
// dx = dy * (Phi(x) + x phi(x)).
cudaError_t gelu_backward(const float* x, const float* dy, float* dx, int64_t n,
                          cudaStream_t stream);

// y[r, c] += b[c].
cudaError_t add_row_bias(float* y, const float* b, int64_t rows, int cols, cudaStream_t stream);
// out[c] += sum_r x[r, c] (fixed order over r: deterministic).
cudaError_t add_col_sums(const float* x, int64_t rows, int cols, float* out, cudaStream_t stream);
// y = a + b, n elements (y may alias a or b).
cudaError_t add(const float* a, const float* b, float* y, int64_t n, cudaStream_t stream);

// Per row: xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps) (biased variance),
// y = gamma * xhat + beta. Writes y, xhat (rows x cols) and rstd (rows).
cudaError_t layernorm_forward(const float* x, const float* gamma, const float* beta, int64_t rows,
                              int cols, float eps, float* y, float* xhat, float* rstd,
                              cudaStream_t stream);
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma; dgamma[c] += sum_r dy *
// xhat, dbeta[c] += sum_r dy.
cudaError_t layernorm_backward(const float* dy, const float* xhat, const float* rstd,
                               const float* gamma, int64_t rows, int cols, float* dx, float* dgamma,
                               float* dbeta, cudaStream_t stream);

// Softmax cross-entropy of logits (rows x classes) against labels (rows, int32). Writes
// loss_row[r] = log sum exp(z - max) - (z_y - max) (double), correct[r] = 1 when the arg max (ties:
// lower class) is the label, and grad = (softmax - onehot) / rows. Labels outside [0, classes)
// give loss NaN and correct -1 for that row (the caller checks labels on the host).
cudaError_t softmax_cross_entropy(const float* logits, const int32_t* labels, int64_t rows,
                                  int classes, double* loss_row, int32_t* correct, float* grad,
                                  cudaStream_t stream);

// The gate's backward through the softmax, per token t (S x N logits, k slots):
//   p = exp(logits - lse[t]);  dp[e] = sum of dw[t, i] over slots with expert_ids[t, i] == e
//   dlogits = p * (dp - <p, dp>) + aux_weight * aux_grad          (aux_grad may be null)
cudaError_t gate_softmax_backward(const float* logits, const float* lse, const int32_t* expert_ids,
                                  const float* dw, const float* aux_grad, float aux_weight,
                                  int64_t tokens, int experts, int k, float* dlogits,
                                  cudaStream_t stream);

struct AdamStep {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float step_size = 0;     // lr / (1 - beta1^t)
  float inv_sqrt_bc2 = 1;  // 1 / sqrt(1 - beta2^t)
  float decay = 1;         // 1 - lr * weight_decay
  float grad_scale = 1;    // g = grad * grad_scale (the 1/P of the data-parallel mean)
};
// Adam (train/optimizer.h) on n elements: p *= decay; m = b1 m + (1-b1) g;
// v = b2 v + (1-b2) g^2; p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps).
cudaError_t adam_step(float* p, const float* grad, float* m, float* v, int64_t n, const AdamStep& s,
                      cudaStream_t stream);

}  // namespace tamoe::train::gpu
