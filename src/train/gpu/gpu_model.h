// The tamoe-train classifier on the GPU (the device twin of moe::MoeClassifier): input projection
// + GELU, L GpuMoeLayer blocks, linear head, with every parameter, gradient and Adam moment in
// flat device buffers. Parameters are initialised by the host model (same seed, same values) and
// copied over, so a GPU run starts where the host run starts.
//
// Flat layout: the replicated (dense) parameters first, in the host's dense_params() order, then
// this rank's experts; so the data-parallel gradient average is one ncclAllReduce over the
// first dense_numel() values.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "train/gpu/gpu_moe_layer.h"
#include "train/moe/moe_model.h"
#include "train/optimizer.h"

namespace tamoe::train::gpu {

class GpuClassifier {
 public:
  // Collective through the layers only later (forward/backward). host: the initialised host
  // model of the same configuration (its parameter values are uploaded).
  GpuClassifier(moe::MoeClassifier& host, const moe::ModelConfig& cfg,
                const route::ExpertLayout& layout, coll::DeviceAllToAll& a2a, cudaStream_t stream);

  // x: rows x in_features (device). Returns rows x classes logits (device), valid until the next
  // forward. Collective.
  const float* forward(const float* x, int64_t rows);
  // Adds the gradients of (loss + aux_weight * sum of aux) given d loss / d logits. Collective.
  void backward(const float* dlogits);
  double aux_loss() const;
  void zero_grad();

  // Flat device buffers (numel() floats each).
  float* values() { return static_cast<float*>(values_.get()); }
  float* grads() { return static_cast<float*>(grads_.get()); }
  int64_t numel() const { return numel_; }
  int64_t dense_numel() const { return dense_numel_; }
  // Copies between the device buffers and a host registry with the same names and shapes.
  void download_values(ParamRegistry& host) const;
  void download_grads(ParamRegistry& host) const;
  void upload_values(const ParamRegistry& host);
  // One parameter's slice of any flat buffer in this layout (values, grads, Adam moments) to or
  // from a host matrix of its shape.
  void download_slice(const float* flat, const std::string& name, MatrixRf& out) const;
  void upload_slice(float* flat, const std::string& name, const MatrixRf& in) const;

  const Blas& blas() const { return *blas_; }
  cudaStream_t stream() const { return stream_; }
  std::vector<std::unique_ptr<GpuMoeLayer>> layers;

 private:
  struct Slot {
    int64_t offset = 0, rows = 0, cols = 0;
  };
  float* value(const std::string& name);
  float* grad(const std::string& name);
  LinearRef linear(const std::string& prefix);
  const Slot& slot(const std::string& name, const MatrixRf& m) const;

  moe::ModelConfig cfg_;
  cudaStream_t stream_;
  std::unique_ptr<Blas> blas_;
  std::map<std::string, Slot> slots_;
  int64_t numel_ = 0, dense_numel_ = 0;
  coll::DeviceBuffer values_, grads_;
  LinearRef input_, head_;
  int64_t rows_ = 0;
  const float* x_ = nullptr;
  const float* head_in_ = nullptr;
  coll::DeviceBuffer h0_, a0_, logits_, dh_, da0_;
};

// Adam (train/optimizer.h, same update in fp32) on a flat device buffer; the moments live on the
// device. grad_scale multiplies the gradients first (1/P: the data-parallel mean).
class GpuAdam {
 public:
  GpuAdam(int64_t numel, const AdamOptions& options, cudaStream_t stream);
  void step(float* values, const float* grads, float grad_scale);
  int64_t steps() const { return steps_; }
  // Moments in the flat layout (numel floats each), for tests and checkpoints.
  float* m() { return static_cast<float*>(m_.get()); }
  float* v() { return static_cast<float*>(v_.get()); }
  void set_steps(int64_t s) { steps_ = s; }

 private:
  int64_t n_;
  AdamOptions o_;
  cudaStream_t stream_;
  int64_t steps_ = 0;
  coll::DeviceBuffer m_, v_;
};

}  // namespace tamoe::train::gpu
