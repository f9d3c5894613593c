#include "train/gpu/gpu_moe_layer.h"

#include <cstring>

#include "kernels/gate_kernels.h"
#include "routing/losses.h"
#include "runtime/cuda_check.h"
#include "runtime/error.h"
#include "train/gpu/train_kernels.h"

namespace tamoe::train::gpu {

namespace {

// Layout of the pinned host staging of one forward's small results.
struct HostStage {
  int32_t* topk_count;
  int32_t* ids;
  int32_t* rerouted;
  float* aux_loss;
  unsigned long long* nonfinite;
};

HostStage stage_of(void* base, int N, int64_t copies) {
  auto* u = static_cast<unsigned long long*>(base);
  auto* f = reinterpret_cast<float*>(u + 1);
  auto* i = reinterpret_cast<int32_t*>(f + 1);
  return {i, i + N, i + N + copies, f, u};
}

size_t stage_bytes(int N, int64_t copies) {
  return sizeof(unsigned long long) + sizeof(float) +
         sizeof(int32_t) * static_cast<size_t>(N + copies + 1);
}

}  // namespace

GpuMoeLayer::GpuMoeLayer(const moe::MoeConfig& cfg, const route::ExpertLayout& layout,
                         coll::DeviceAllToAll& a2a, const Blas& blas, MoeLayerRefs refs)
    : cfg_(cfg),
      layout_(layout),
      a2a_(&a2a),
      blas_(&blas),
      stream_(blas.stream()),
      p_(std::move(refs)) {
  route::validate(layout_);
  route::validate(cfg_.gate, layout_);
  N_ = layout_.num_experts();
  E_ = layout_.experts_per_rank;
  P_ = layout_.num_ranks();
  k_ = cfg_.gate.k;
  H_ = cfg_.hidden;
  F_ = cfg_.ffn_hidden;
  TAMOE_CHECK_ARG(P_ == a2a.groups().size(), "GpuMoeLayer: layout",
                  str(a2a.groups().size(), " ranks (the all-to-all group)"), str(P_, " ranks"));
  TAMOE_CHECK_ARG(N_ <= kernels::kGateMaxExperts, "GpuMoeLayer: experts",
                  str("at most ", kernels::kGateMaxExperts, " (the gate kernels)"), str(N_));
  TAMOE_CHECK_ARG(cfg_.gate.score == route::ScoreFn::softmax, "GpuMoeLayer: gate score",
                  "softmax (the layer's combine weights are softmax probabilities)", "sigmoid");
  TAMOE_CHECK_ARG(static_cast<int>(p_.fc1.size()) == E_ && static_cast<int>(p_.fc2.size()) == E_,
                  "GpuMoeLayer: expert parameters", str(E_, " experts"), str(p_.fc1.size()));
  if (cfg_.target.size() == 0) cfg_.target = Eigen::VectorXd::Constant(N_, 1.0 / N_);
  route::check_target(cfg_.target, N_, "GpuMoeLayer: target");
  if (cfg_.gate.max_nodes > 0)
    TAMOE_CHECK_ARG(layout_.num_nodes() <= kernels::kGateMaxNodes, "GpuMoeLayer: node limit",
                    str("at most ", kernels::kGateMaxNodes, " nodes"), str(layout_.num_nodes()));
  std::vector<float> t(cfg_.target.data(), cfg_.target.data() + N_);
  upload(typed<float>(target_, N_), t.data(), t.size() * sizeof(float), stream_);
  upload(typed<int>(node_of_rank_, P_), layout_.node_of_rank.data(), P_ * sizeof(int), stream_);
  topk_counts_.assign(N_, 0);
}

void GpuMoeLayer::set_bias(const Eigen::VectorXf& bias) {
  has_bias_ = bias.size() > 0;
  if (!has_bias_) return;
  TAMOE_CHECK_ARG(bias.size() == N_, "GpuMoeLayer::set_bias", str(N_, " values"), str(bias.size()));
  upload(typed<float>(bias_, N_), bias.data(), N_ * sizeof(float), stream_);
}

void GpuMoeLayer::route_gate(int64_t S) {
  const int64_t copies = S * k_;
  float* logits = typed<float>(logits_, S * N_);
  linear_forward(*blas_, x_, p_.gate.w, p_.gate.b, S, H_, N_, logits);
  const float* bias = has_bias_ ? static_cast<const float*>(bias_.get()) : nullptr;

  kernels::GateParams gp = kernels::GateParams::regular(S, N_, k_, E_);  // P_ = N_ / E_ ranks
  gp.score = kernels::kGateSoftmax;
  gp.node_of_rank = static_cast<const int*>(node_of_rank_.get());
  gp.nodes = layout_.num_nodes();
  gp.max_nodes = cfg_.gate.max_nodes;
  gp.node_score_top = cfg_.gate.node_score_top;
  // The gate zeroes the counts itself: on the fast path a zeroing kernel that the top-k kernel
  // overlaps (programmatic launch), instead of a memset it would wait for.
  gp.zero_count = true;
  auto* count = typed<int32_t>(topk_count_, N_);
  HostStage hs = stage_of(host_.reserve(stage_bytes(N_, copies)), N_, copies);
  auto* nonfinite = typed<unsigned long long>(nonfinite_, 1);
  TAMOE_CHECK_CUDA(kernels::gate_topk(gp, logits, bias, typed<int32_t>(topk_ids_, copies),
                                      typed<float>(topk_scores_, copies), typed<float>(lse_, S),
                                      count, nonfinite, stream_));
  TAMOE_CHECK_CUDA(cudaMemcpyAsync(hs.nonfinite, nonfinite, sizeof(unsigned long long),
                                   cudaMemcpyDeviceToHost, stream_));

  // Capacity per destination rank, as the host layer computes it (plan-aware when a plan row
  // is set), uploaded when the token count changes.
  route::GateOptions gopt = cfg_.gate;
  if (!cfg_.plan_row.empty() && gopt.overflow != route::Overflow::dropless)
    gopt.capacity_per_rank = route::capacity_from_plan(cfg_.plan_row, S, k_, gopt.capacity_factor);
  if (cap_tokens_ != S) {
    cap_host_ = route::effective_capacity(gopt, S, P_);
    upload(typed<int64_t>(capacity_, P_), cap_host_.data(), P_ * sizeof(int64_t), stream_);
    cap_tokens_ = S;
  }
  kernels::CapacityParams cp;
  cp.overflow = gopt.overflow == route::Overflow::drop_lowest ? kernels::kGateDropLowest
                : gopt.overflow == route::Overflow::reroute   ? kernels::kGateReroute
                                                              : kernels::kGateDropless;
  cp.normalize = false;
  cp.capacity = static_cast<const int64_t*>(capacity_.get());
  const size_t ws = kernels::gate_capacity_workspace_bytes(gp);
  TAMOE_CHECK_CUDA(kernels::gate_capacity(
      gp, cp, logits, bias, static_cast<const int32_t*>(topk_ids_.get()),
      static_cast<const float*>(topk_scores_.get()), typed<int32_t>(ids_, copies),
      typed<float>(weights_, copies), typed<uint8_t>(dropped_, copies),
      typed<int32_t>(rerouted_, 1), cap_work_.reserve(std::max<size_t>(1, ws)), ws, stream_));

  const bool aux = (cfg_.aux == moe::AuxKind::switch_loss || cfg_.aux == moe::AuxKind::ta_loss);
  if (aux && S > 0) {
    const float* target =
        cfg_.aux == moe::AuxKind::ta_loss ? static_cast<const float*>(target_.get()) : nullptr;
    TAMOE_CHECK_CUDA(
        kernels::balance_weights(count, N_, copies, target, typed<float>(balance_w_, N_), stream_));
    TAMOE_CHECK_CUDA(kernels::aux_loss(logits, S, N_, static_cast<const float*>(balance_w_.get()),
                                       0.0f, typed<float>(aux_loss_, 1),
                                       typed<float>(aux_grad_, S * N_),
                                       typed<float>(aux_work_, std::max<int64_t>(S, 2)), stream_));
    TAMOE_CHECK_CUDA(cudaMemcpyAsync(hs.aux_loss, aux_loss_.get(), sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_));
  } else {
    *hs.aux_loss = 0;
  }
  TAMOE_CHECK_CUDA(
      cudaMemcpyAsync(hs.topk_count, count, N_ * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  if (copies > 0)
    TAMOE_CHECK_CUDA(cudaMemcpyAsync(hs.ids, ids_.get(), copies * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, stream_));
  TAMOE_CHECK_CUDA(cudaMemcpyAsync(hs.rerouted, rerouted_.get(), sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, stream_));
}

void GpuMoeLayer::copy_routing_to_host(int64_t S) {
  // The dispatch's create()/update() synchronized the stream, so the staged copies are complete.
  const int64_t copies = S * k_;
  HostStage hs = stage_of(host_.reserve(stage_bytes(N_, copies)), N_, copies);
  if (*hs.nonfinite != ~0ULL) {
    const unsigned long long i = *hs.nonfinite;
    fail(Status::invalid_argument, "GpuMoeLayer::forward: gate logits", "finite values",
         str("NaN/Inf at token ", i / N_, ", expert ", i % N_));
  }
  aux_value_ = *hs.aux_loss;
  for (int e = 0; e < N_; ++e) topk_counts_[e] = hs.topk_count[e];
  route::Routing& r = routing_;
  r.expert.resize(S, k_);
  r.weight.resize(0, 0);  // the weights stay on the device
  r.dropped.resize(S, k_);
  r.expert_count.assign(N_, 0);
  r.rank_count.assign(P_, 0);
  r.num_dropped = 0;
  r.num_rerouted = *hs.rerouted;
  r.capacity = cap_host_;
  for (int64_t c = 0; c < copies; ++c) {
    const int32_t e = hs.ids[c];
    r.expert.data()[c] = e;
    r.dropped.data()[c] = e < 0 ? 1 : 0;
    if (e < 0) {
      ++r.num_dropped;
      continue;
    }
    ++r.expert_count[e];
    ++r.rank_count[layout_.rank_of(e)];
  }
}

const float* GpuMoeLayer::forward(const float* x, int64_t S) {
  TAMOE_CHECK_ARG(S >= 0, "GpuMoeLayer::forward: tokens", ">= 0", str(S));
  x_ = x;
  S_ = S;
  clock_.start(stream_);
  route_gate(S);
  clock_.mark(kGate, stream_);

  // One handle for the layer's lifetime: update() re-plans it for this step's routing and keeps
  // its device buffers, so a step allocates nothing once the sizes have been seen.
  const coll::DispatchShape shape{S, k_, E_};
  const auto* ids = static_cast<const int32_t*>(ids_.get());
  if (handle_)
    handle_->update(ids, shape, stream_);
  else
    handle_ = coll::DeviceDispatch::create(*a2a_, ids, shape, stream_);
  copy_routing_to_host(S);
  R_ = handle_->recv_rows();
  float* recv = typed<float>(recv_, R_ * H_);
  handle_->dispatch(x, H_, coll::DType::f32, recv, stream_);
  clock_.mark(kA2a, stream_);

  float* h1 = typed<float>(h1_, R_ * F_);
  float* a1 = typed<float>(a1_, R_ * F_);
  float* y = typed<float>(y_, R_ * H_);
  block_off_.assign(E_, 0);
  block_rows_.assign(E_, 0);
  for (int e = 0; e < E_; ++e) {
    block_off_[e] = handle_->expert_offsets()[static_cast<size_t>(e) * P_];
    for (int s = 0; s < P_; ++s) block_rows_[e] += handle_->expert_counts()[e * P_ + s];
    const int64_t off = block_off_[e], n = block_rows_[e];
    if (n == 0) continue;
    linear_forward(*blas_, recv + off * H_, p_.fc1[e].w, p_.fc1[e].b, n, H_, F_, h1 + off * F_);
    TAMOE_CHECK_CUDA(gelu_forward(h1 + off * F_, a1 + off * F_, n * F_, stream_));
    linear_forward(*blas_, a1 + off * F_, p_.fc2[e].w, p_.fc2[e].b, n, F_, H_, y + off * H_);
  }
  clock_.mark(kExperts, stream_);

  float* comb = typed<float>(comb_, S * H_);
  handle_->combine(y, static_cast<const float*>(weights_.get()), H_, coll::DType::f32, comb,
                   stream_);
  float* z = typed<float>(z_, S * H_);
  float* out = typed<float>(out_, S * H_);
  TAMOE_CHECK_CUDA(add(x, comb, z, S * H_, stream_));
  TAMOE_CHECK_CUDA(layernorm_forward(z, p_.norm.gamma, p_.norm.beta, S, H_, 1e-5f, out,
                                     typed<float>(xhat_, S * H_), typed<float>(rstd_, S), stream_));
  clock_.mark(kCombine, stream_);
  return out;
}

const float* GpuMoeLayer::backward(const float* dy) {
  TAMOE_CHECK_ARG(handle_ != nullptr, "GpuMoeLayer::backward", "a forward before", "none");
  const int64_t S = S_;
  clock_.start(stream_);
  float* dz = typed<float>(dz_, S * H_);
  TAMOE_CHECK_CUDA(layernorm_backward(dy, static_cast<const float*>(xhat_.get()),
                                      static_cast<const float*>(rstd_.get()), p_.norm.gamma, S, H_,
                                      dz, p_.norm.dgamma, p_.norm.dbeta, stream_));
  float* gy = typed<float>(gy_, R_ * H_);
  float* dw = typed<float>(dw_, S * k_);
  handle_->combine_backward(dz, static_cast<const float*>(weights_.get()), H_, coll::DType::f32, gy,
                            dw, stream_);
  clock_.mark(kCombine, stream_);

  const auto* recv = static_cast<const float*>(recv_.get());
  const auto* h1 = static_cast<const float*>(h1_.get());
  const auto* a1 = static_cast<const float*>(a1_.get());
  float* da1 = typed<float>(da1_, R_ * F_);
  float* drecv = typed<float>(drecv_, R_ * H_);
  for (int e = 0; e < E_; ++e) {
    const int64_t off = block_off_[e], n = block_rows_[e];
    if (n == 0) continue;
    linear_backward(*blas_, a1 + off * F_, p_.fc2[e].w, gy + off * H_, n, F_, H_, p_.fc2[e].dw,
                    p_.fc2[e].db, da1 + off * F_, false);
    TAMOE_CHECK_CUDA(gelu_backward(h1 + off * F_, da1 + off * F_, da1 + off * F_, n * F_, stream_));
    linear_backward(*blas_, recv + off * H_, p_.fc1[e].w, da1 + off * F_, n, H_, F_, p_.fc1[e].dw,
                    p_.fc1[e].db, drecv + off * H_, false);
  }
  clock_.mark(kExperts, stream_);

  float* dx = typed<float>(dx_, S * H_);
  handle_->dispatch_backward(drecv, H_, coll::DType::f32, dx, stream_);
  clock_.mark(kA2a, stream_);
  TAMOE_CHECK_CUDA(add(dx, dz, dx, S * H_, stream_));
  clock_.mark(kPermute, stream_);

  float* dlogits = typed<float>(dlogits_, S * N_);
  const bool aux = (cfg_.aux == moe::AuxKind::switch_loss || cfg_.aux == moe::AuxKind::ta_loss) &&
                   cfg_.aux_weight != 0 && S > 0;
  TAMOE_CHECK_CUDA(gate_softmax_backward(
      static_cast<const float*>(logits_.get()), static_cast<const float*>(lse_.get()),
      static_cast<const int32_t*>(ids_.get()), dw,
      aux ? static_cast<const float*>(aux_grad_.get()) : nullptr,
      static_cast<float>(cfg_.aux_weight), S, N_, k_, dlogits, stream_));
  linear_backward(*blas_, x_, p_.gate.w, dlogits, S, H_, N_, p_.gate.dw, p_.gate.db, dx, true);
  clock_.mark(kGate, stream_);
  return dx;
}

void GpuMoeLayer::collect_times(moe::PhaseTimes& t) {
  double s[kPhases] = {0, 0, 0, 0, 0};
  clock_.collect(s);
  t.gate += s[kGate];
  t.permute += s[kPermute];
  t.a2a += s[kA2a];
  t.experts += s[kExperts];
  t.combine += s[kCombine];
}

}  // namespace tamoe::train::gpu
