// Small device helpers of the GPU training path: a cuBLAS handle bound to one stream, the
// row-major Linear forward/backward on cuBLAS (fp32, no TF32), typed views of growable device
// buffers and host <-> device copies of parameter matrices.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "collectives/device.h"

namespace tamoe::train::gpu {

// Throws tamoe::Error (Status::system) naming the call and cuBLAS's status string.
void check_cublas(cublasStatus_t s, const char* call, const char* file, int line);
#define TAMOE_CHECK_CUBLAS(call) \
  ::tamoe::train::gpu::check_cublas((call), #call, __FILE__, __LINE__)

class Blas {
 public:
  explicit Blas(cudaStream_t stream);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cublasHandle_t get() const { return h_; }
  cudaStream_t stream() const { return stream_; }

 private:
  cublasHandle_t h_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

// y = x W + b (row-major: x rows x in, W in x out, b out; b may be null).
void linear_forward(const Blas& blas, const float* x, const float* w, const float* b, int64_t rows,
                    int in, int out, float* y);
// dW += x^T dy, db += column sums of dy (db may be null), and dx = dy W^T (dx null: skipped;
// accumulate_dx: dx += dy W^T).
void linear_backward(const Blas& blas, const float* x, const float* w, const float* dy,
                     int64_t rows, int in, int out, float* dw, float* db, float* dx,
                     bool accumulate_dx);

// A typed view of a growable buffer with room for n elements (at least one).
template <typename T>
T* typed(coll::DeviceBuffer& b, int64_t n) {
  return static_cast<T*>(b.reserve(static_cast<size_t>(std::max<int64_t>(1, n)) * sizeof(T)));
}

// Host -> device returns once the source may be reused; device -> host waits for the stream.
void upload(void* dst, const void* src, size_t bytes, cudaStream_t stream);
void download(void* dst, const void* src, size_t bytes, cudaStream_t stream);
template <typename T>
std::vector<T> download_vector(const T* src, int64_t n, cudaStream_t stream) {
  std::vector<T> v(static_cast<size_t>(std::max<int64_t>(0, n)));
  if (n > 0) download(v.data(), src, v.size() * sizeof(T), stream);
  return v;
}

// True when this process sees at least one CUDA device (false on a machine without a GPU or
// driver; never throws).
bool cuda_device_available();

// Page-locked host memory, so device -> host copies of small per-step results run
// asynchronously and complete at the next stream synchronization.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* reserve(size_t bytes);  // keeps nothing when it grows

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// Seconds per phase on a stream, from CUDA events: mark(phase) ends the interval since the last
// mark (or start()) and books it to `phase`. Host time between two marks (e.g. the dispatch's
// count exchange) counts, as the event after it completes only when the host enqueues it.
class PhaseClock {
 public:
  ~PhaseClock();
  void start(cudaStream_t stream);
  void mark(int phase, cudaStream_t stream);
  // Waits for the last mark and adds each interval to seconds[phase]; forgets the marks.
  void collect(double* seconds);

 private:
  cudaEvent_t next_event();
  std::vector<cudaEvent_t> pool_;
  std::vector<int> phase_;  // phase_[i] for the interval ending at event i (-1: a start)
  size_t used_ = 0;
};

}  // namespace tamoe::train::gpu
