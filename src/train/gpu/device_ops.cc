#include "train/gpu/device_ops.h"

#include "runtime/cuda_check.h"
#include "runtime/error.h"
#include "train/gpu/train_kernels.h"

namespace tamoe::train::gpu {

void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail(Status::system, str(file, ":", line), str(call, " to succeed"), cublasGetStatusString(s));
}

Blas::Blas(cudaStream_t stream) : stream_(stream) {
  TAMOE_CHECK_CUBLAS(cublasCreate(&h_));
  TAMOE_CHECK_CUBLAS(cublasSetStream(h_, stream));
  // Plain fp32 (no TF32 tensor ops): the GPU path is compared with the host path at fp32
  // tolerance.
  TAMOE_CHECK_CUBLAS(cublasSetMathMode(h_, CUBLAS_DEFAULT_MATH));
}

Blas::~Blas() {
  if (h_) cublasDestroy(h_);
}

// Row-major matrices are column-major transposes, so row-major C = A B is column-major
// C^T = B^T A^T: the operands swap places and keep their leading dimensions.
void linear_forward(const Blas& blas, const float* x, const float* w, const float* b, int64_t rows,
                    int in, int out, float* y) {
  if (rows <= 0) return;
  const float one = 1.0f, zero = 0.0f;
  TAMOE_CHECK_CUBLAS(cublasSgemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, out, static_cast<int>(rows),
                                 in, &one, w, out, x, in, &zero, y, out));
  if (b) TAMOE_CHECK_CUDA(add_row_bias(y, b, rows, out, blas.stream()));
}

void linear_backward(const Blas& blas, const float* x, const float* w, const float* dy,
                     int64_t rows, int in, int out, float* dw, float* db, float* dx,
                     bool accumulate_dx) {
  if (rows <= 0) return;
  const float one = 1.0f, zero = 0.0f;
  // dW (in x out) += x^T dy: column-major dW^T (out x in) += dy^T (out x rows) * x (rows x in).
  TAMOE_CHECK_CUBLAS(cublasSgemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_T, out, in,
                                 static_cast<int>(rows), &one, dy, out, x, in, &one, dw, out));
  if (db) TAMOE_CHECK_CUDA(add_col_sums(dy, rows, out, db, blas.stream()));
  // dx (rows x in) = dy W^T: column-major dx^T (in x rows) = W (in x out) * dy^T (out x rows).
  if (dx)
    TAMOE_CHECK_CUBLAS(cublasSgemm(blas.get(), CUBLAS_OP_T, CUBLAS_OP_N, in, static_cast<int>(rows),
                                   out, &one, w, out, dy, out, accumulate_dx ? &one : &zero, dx,
                                   in));
}

void upload(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  // From pageable memory the source is staged before the call returns (the caller may reuse it).
  TAMOE_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
}

void download(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  TAMOE_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream));
}

bool cuda_device_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace tamoe::train::gpu

namespace tamoe::train::gpu {

PinnedBuffer::~PinnedBuffer() {
  if (p_) cudaFreeHost(p_);
}

void* PinnedBuffer::reserve(size_t bytes) {
  if (bytes <= n_) return p_;
  if (p_) TAMOE_CHECK_CUDA(cudaFreeHost(p_));
  p_ = nullptr;
  n_ = 0;
  TAMOE_CHECK_CUDA(cudaMallocHost(&p_, bytes));
  n_ = bytes;
  return p_;
}

PhaseClock::~PhaseClock() {
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
}

cudaEvent_t PhaseClock::next_event() {
  if (used_ == pool_.size()) {
    cudaEvent_t e = nullptr;
    TAMOE_CHECK_CUDA(cudaEventCreate(&e));
    pool_.push_back(e);
    phase_.push_back(-1);
  }
  return pool_[used_++];
}

void PhaseClock::start(cudaStream_t stream) {
  cudaEvent_t e = next_event();
  phase_[used_ - 1] = -1;
  TAMOE_CHECK_CUDA(cudaEventRecord(e, stream));
}

void PhaseClock::mark(int phase, cudaStream_t stream) {
  cudaEvent_t e = next_event();
  phase_[used_ - 1] = phase;
  TAMOE_CHECK_CUDA(cudaEventRecord(e, stream));
}

void PhaseClock::collect(double* seconds) {
  if (used_ == 0) return;
  TAMOE_CHECK_CUDA(cudaEventSynchronize(pool_[used_ - 1]));
  for (size_t i = 1; i < used_; ++i) {
    if (phase_[i] < 0) continue;
    float ms = 0;
    TAMOE_CHECK_CUDA(cudaEventElapsedTime(&ms, pool_[i - 1], pool_[i]));
    seconds[phase_[i]] += 1e-3 * ms;
  }
  used_ = 0;
}

}  // namespace tamoe::train::gpu
