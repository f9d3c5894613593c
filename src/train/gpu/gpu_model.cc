#include "train/gpu/gpu_model.h"

#include <cmath>

#include "runtime/cuda_check.h"
#include "runtime/error.h"
#include "train/gpu/train_kernels.h"

namespace tamoe::train::gpu {

GpuClassifier::GpuClassifier(moe::MoeClassifier& host, const moe::ModelConfig& cfg,
                             const route::ExpertLayout& layout, coll::DeviceAllToAll& a2a,
                             cudaStream_t stream)
    : cfg_(cfg), stream_(stream), blas_(std::make_unique<Blas>(stream)) {
  for (const auto* reg : {&host.dense_params(), &host.expert_params()}) {
    for (const auto& e : reg->entries()) {
      slots_[e.name] = Slot{numel_, e.param->value.rows(), e.param->value.cols()};
      numel_ += e.param->value.size();
    }
    if (reg == &host.dense_params()) dense_numel_ = numel_;
  }
  TAMOE_CHECK_ARG(static_cast<size_t>(host.params().size()) == slots_.size(),
                  "GpuClassifier: parameters", str(host.params().size(), " (dense + experts)"),
                  str(slots_.size()));
  typed<float>(values_, numel_);
  typed<float>(grads_, numel_);
  upload_values(host.params());
  zero_grad();

  input_ = linear("input");
  head_ = linear("head");
  for (int l = 0; l < cfg.layers; ++l) {
    const std::string p = str("moe", l, ".");
    MoeLayerRefs r;
    r.gate = linear(p + "gate");
    r.norm = NormRef{value(p + "norm.gamma"), value(p + "norm.beta"), grad(p + "norm.gamma"),
                     grad(p + "norm.beta")};
    for (int e = 0; e < layout.experts_per_rank; ++e) {
      r.fc1.push_back(linear(str(p, "expert", e, ".fc1")));
      r.fc2.push_back(linear(str(p, "expert", e, ".fc2")));
    }
    layers.push_back(std::make_unique<GpuMoeLayer>(cfg.moe, layout, a2a, *blas_, std::move(r)));
  }
}

float* GpuClassifier::value(const std::string& name) {
  auto it = slots_.find(name);
  if (it == slots_.end())
    fail(Status::internal, "GpuClassifier", str("a parameter named ", name), "none");
  return values() + it->second.offset;
}

float* GpuClassifier::grad(const std::string& name) {
  (void)value(name);
  return grads() + slots_.at(name).offset;
}

LinearRef GpuClassifier::linear(const std::string& prefix) {
  return LinearRef{value(prefix + ".weight"), value(prefix + ".bias"), grad(prefix + ".weight"),
                   grad(prefix + ".bias")};
}

const GpuClassifier::Slot& GpuClassifier::slot(const std::string& name, const MatrixRf& m) const {
  auto it = slots_.find(name);
  if (it == slots_.end())
    fail(Status::invalid_argument, "GpuClassifier: host tensor", "a parameter name of this model",
         str("'", name, "'"));
  if (m.rows() != it->second.rows || m.cols() != it->second.cols)
    fail(Status::invalid_argument, str("GpuClassifier: ", name),
         str(it->second.rows, " x ", it->second.cols), str(m.rows(), " x ", m.cols()));
  return it->second;
}

void GpuClassifier::download_slice(const float* flat, const std::string& name,
                                   MatrixRf& out) const {
  const Slot& s = slot(name, out);
  download(out.data(), flat + s.offset, static_cast<size_t>(out.size()) * sizeof(float), stream_);
}

void GpuClassifier::upload_slice(float* flat, const std::string& name, const MatrixRf& in) const {
  const Slot& s = slot(name, in);
  upload(flat + s.offset, in.data(), static_cast<size_t>(in.size()) * sizeof(float), stream_);
}

void GpuClassifier::download_values(ParamRegistry& host) const {
  for (const auto& e : host.entries())
    download_slice(static_cast<const float*>(values_.get()), e.name, e.param->value);
}

void GpuClassifier::download_grads(ParamRegistry& host) const {
  for (const auto& e : host.entries())
    download_slice(static_cast<const float*>(grads_.get()), e.name, e.param->grad);
}

void GpuClassifier::upload_values(const ParamRegistry& host) {
  for (const auto& e : host.entries())
    upload_slice(static_cast<float*>(values_.get()), e.name, e.param->value);
  TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream_));
}

void GpuClassifier::zero_grad() {
  TAMOE_CHECK_CUDA(cudaMemsetAsync(grads_.get(), 0, numel_ * sizeof(float), stream_));
}

const float* GpuClassifier::forward(const float* x, int64_t rows) {
  const int in = cfg_.in_features, H = cfg_.moe.hidden, C = cfg_.classes;
  x_ = x;
  rows_ = rows;
  float* h0 = typed<float>(h0_, rows * H);
  float* a0 = typed<float>(a0_, rows * H);
  linear_forward(*blas_, x, input_.w, input_.b, rows, in, H, h0);
  TAMOE_CHECK_CUDA(gelu_forward(h0, a0, rows * H, stream_));
  const float* h = a0;
  for (auto& l : layers) h = l->forward(h, rows);
  head_in_ = h;  // the last layer's output buffer, unchanged until the next forward
  float* logits = typed<float>(logits_, rows * C);
  linear_forward(*blas_, h, head_.w, head_.b, rows, H, C, logits);
  return logits;
}

void GpuClassifier::backward(const float* dlogits) {
  const int in = cfg_.in_features, H = cfg_.moe.hidden, C = cfg_.classes;
  float* dh = typed<float>(dh_, rows_ * H);
  linear_backward(*blas_, head_in_, head_.w, dlogits, rows_, H, C, head_.dw, head_.db, dh, false);
  const float* d = dh;
  for (size_t l = layers.size(); l-- > 0;) d = layers[l]->backward(d);
  float* da0 = typed<float>(da0_, rows_ * H);
  TAMOE_CHECK_CUDA(gelu_backward(static_cast<const float*>(h0_.get()), d, da0, rows_ * H, stream_));
  linear_backward(*blas_, x_, input_.w, da0, rows_, in, H, input_.dw, input_.db, nullptr, false);
}

double GpuClassifier::aux_loss() const {
  double s = 0;
  for (const auto& l : layers) s += l->aux_loss();
  return s;
}

GpuAdam::GpuAdam(int64_t numel, const AdamOptions& options, cudaStream_t stream)
    : n_(numel), o_(options), stream_(stream) {
  TAMOE_CHECK_CUDA(cudaMemsetAsync(typed<float>(m_, n_), 0, n_ * sizeof(float), stream_));
  TAMOE_CHECK_CUDA(cudaMemsetAsync(typed<float>(v_, n_), 0, n_ * sizeof(float), stream_));
}

void GpuAdam::step(float* values, const float* grads, float grad_scale) {
  // The same scalars as the host Adam::step, computed in double and rounded to float.
  const double t = static_cast<double>(steps_ + 1);
  AdamStep s;
  s.beta1 = static_cast<float>(o_.beta1);
  s.beta2 = static_cast<float>(o_.beta2);
  s.eps = static_cast<float>(o_.eps);
  s.step_size = static_cast<float>(o_.lr / (1.0 - std::pow(o_.beta1, t)));
  s.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(o_.beta2, t)));
  s.decay = static_cast<float>(1.0 - o_.lr * o_.weight_decay);
  s.grad_scale = grad_scale;
  TAMOE_CHECK_CUDA(adam_step(values, grads, m(), v(), n_, s, stream_));
  ++steps_;
}

}  // namespace tamoe::train::gpu
