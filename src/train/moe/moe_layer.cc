#include "train/moe/moe_layer.h"

#include <chrono>
#include <cmath>
#include <type_traits>

#include "routing/losses.h"
#include "runtime/error.h"

namespace tamoe::train::moe {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename T>
coll::DType dtype_of() {
  return std::is_same_v<T, double> ? coll::DType::f64 : coll::DType::f32;
}

}  // namespace

const char* aux_name(AuxKind a) {
  switch (a) {
    case AuxKind::none:
      return "none";
    case AuxKind::switch_loss:
      return "switch";
    case AuxKind::ta_loss:
      return "ta";
    case AuxKind::ta_bias:
      return "ta-bias";
  }
  return "?";
}

AuxKind parse_aux(const std::string& s, const std::string& where) {
  if (s == "none") return AuxKind::none;
  if (s == "switch") return AuxKind::switch_loss;
  if (s == "ta") return AuxKind::ta_loss;
  if (s == "ta-bias") return AuxKind::ta_bias;
  fail(Status::invalid_argument, where, "one of none, switch, ta, ta-bias", str("'", s, "'"));
}

PhaseTimes& PhaseTimes::operator+=(const PhaseTimes& o) {
  gate += o.gate;
  permute += o.permute;
  a2a += o.a2a;
  experts += o.experts;
  combine += o.combine;
  return *this;
}

template <typename T>
MoeLayer<T>::MoeLayer(const MoeConfig& cfg, const route::ExpertLayout& layout, coll::AllToAll& a2a,
                      Rng& dense_rng, Rng& expert_rng)
    : cfg_(cfg), layout_(layout), a2a_(&a2a) {
  route::validate(layout_);
  route::validate(cfg_.gate, layout_);
  const int N = layout_.num_experts();
  TAMOE_CHECK_ARG(layout_.num_ranks() == a2a.groups().size(), "MoeLayer: layout",
                  str(a2a.groups().size(), " ranks (the all-to-all group)"),
                  str(layout_.num_ranks(), " ranks"));
  TAMOE_CHECK_ARG(cfg_.hidden > 0 && cfg_.ffn_hidden > 0, "MoeLayer: hidden/ffn_hidden", "both > 0",
                  str(cfg_.hidden, "/", cfg_.ffn_hidden));
  if (cfg_.target.size() == 0) cfg_.target = Eigen::VectorXd::Constant(N, 1.0 / N);
  route::check_target(cfg_.target, N, "MoeLayer: target");
  // Small gate: every expert starts with a similar probability.
  gate = Linear<T>(cfg_.hidden, N, dense_rng, Init::xavier_uniform);
  norm = LayerNorm<T>(cfg_.hidden);
  for (int e = 0; e < layout_.experts_per_rank; ++e)
    experts.emplace_back(cfg_.hidden, cfg_.ffn_hidden, expert_rng);
}

template <typename T>
Matrix<T> MoeLayer<T>::forward(const Matrix<T>& x) {
  TAMOE_CHECK_ARG(x.cols() == cfg_.hidden, "MoeLayer::forward: x", str(cfg_.hidden, " columns"),
                  str(x.cols()));
  const int64_t S = x.rows();
  const int k = cfg_.gate.k;
  const int N = layout_.num_experts();
  const int E = layout_.experts_per_rank;
  const int P = layout_.num_ranks();
  const int64_t H = cfg_.hidden;

  // Gate: logits, softmax (in T), routing on the float logits (the routing layer's contract).
  double t0 = now_s();
  Matrix<T> logits = gate.forward(x);
  probs_.resize(S, N);
  for (int64_t t = 0; t < S; ++t) {
    const T m = logits.row(t).maxCoeff();
    probs_.row(t) = (logits.row(t).array() - m).exp();
    probs_.row(t) /= probs_.row(t).sum();
  }
  const route::MatrixRf logits_f = logits.template cast<float>();
  route::GateOptions gopt = cfg_.gate;
  if (!cfg_.plan_row.empty() && gopt.overflow != route::Overflow::dropless)
    gopt.capacity_per_rank = route::capacity_from_plan(cfg_.plan_row, S, k, gopt.capacity_factor);
  const route::TopK topk = route::select_topk(logits_f, bias_, layout_, gopt);
  routing_ = route::apply_capacity(topk, logits_f, bias_, layout_, gopt);
  topk_counts_ = topk.expert_count;
  aux_value_ = 0;
  aux_grad_.resize(0, 0);
  if ((cfg_.aux == AuxKind::switch_loss || cfg_.aux == AuxKind::ta_loss) && S > 0) {
    const route::MatrixRd logits_d = logits.template cast<double>();
    const Eigen::VectorXd f = route::assignment_share(topk.expert_count);
    route::LossGrad lg = cfg_.aux == AuxKind::switch_loss
                             ? route::switch_loss(logits_d, f)
                             : route::topo_loss(logits_d, f, cfg_.target);
    aux_value_ = lg.value;
    aux_grad_ = std::move(lg.grad);
  }
  double t1 = now_s();
  times_.gate += t1 - t0;

  // Permute: one dispatch row per (token, slot).
  std::vector<int32_t> ids(static_cast<size_t>(S * k));
  w_.setZero(S, k);
  Matrix<T> x_rep(S * k, H);
  for (int64_t t = 0; t < S; ++t)
    for (int i = 0; i < k; ++i) {
      const int32_t e = routing_.expert(t, i);
      ids[t * k + i] = e;
      if (e >= 0) w_(t, i) = probs_(t, e);
      x_rep.row(t * k + i) = x.row(t);
    }
  double t2 = now_s();
  times_.permute += t2 - t1;

  handle_.emplace(coll::HostDispatch::create(*a2a_, ids.data(), {S * k, 1, E}));
  Matrix<T> recv(handle_->recv_rows(), H);
  handle_->dispatch(x_rep.data(), H, dtype_of<T>(), recv.data());
  double t3 = now_s();
  times_.a2a += t3 - t2;

  Matrix<T> y(handle_->recv_rows(), H);
  block_off_.assign(E, 0);
  block_rows_.assign(E, 0);
  for (int e = 0; e < E; ++e) {
    block_off_[e] = handle_->expert_offsets()[static_cast<size_t>(e) * P];
    block_rows_[e] = handle_->expert_rows(e);
    if (block_rows_[e] == 0) continue;
    y.middleRows(block_off_[e], block_rows_[e]) =
        experts[e].forward(recv.middleRows(block_off_[e], block_rows_[e]));
  }
  double t4 = now_s();
  times_.experts += t4 - t3;

  slot_out_.resize(S * k, H);
  const std::vector<float> ones(static_cast<size_t>(S * k), 1.0f);
  handle_->combine(y.data(), ones.data(), H, dtype_of<T>(), slot_out_.data());
  Matrix<T> z = x;
  for (int64_t t = 0; t < S; ++t)
    for (int i = 0; i < k; ++i)
      if (w_(t, i) != T(0)) z.row(t) += w_(t, i) * slot_out_.row(t * k + i);
  double t5 = now_s();
  times_.combine += t5 - t4;
  return norm.forward(z);
}

template <typename T>
Matrix<T> MoeLayer<T>::backward(const Matrix<T>& dy) {
  TAMOE_CHECK_ARG(handle_.has_value(), "MoeLayer::backward", "a forward before", "none");
  const int64_t S = probs_.rows();
  const int k = cfg_.gate.k;
  const int N = layout_.num_experts();
  const int E = layout_.experts_per_rank;
  const int64_t H = cfg_.hidden;
  TAMOE_CHECK_ARG(dy.rows() == S && dy.cols() == H, "MoeLayer::backward: dy", str(S, " x ", H),
                  str(dy.rows(), " x ", dy.cols()));

  double t0 = now_s();
  const Matrix<T> dz = norm.backward(dy);
  Matrix<T> dx = dz;  // the residual path
  // Combine weights: dw = <dz, slot output>; slot gradient = w * dz.
  Matrix<T> dw = Matrix<T>::Zero(S, k);
  Matrix<T> d_slot(S * k, H);
  for (int64_t t = 0; t < S; ++t)
    for (int i = 0; i < k; ++i) {
      dw(t, i) = dz.row(t).dot(slot_out_.row(t * k + i));
      d_slot.row(t * k + i) = w_(t, i) * dz.row(t);
    }
  Matrix<T> dy_exp(handle_->recv_rows(), H);
  std::vector<float> ones(static_cast<size_t>(S * k), 1.0f);
  std::vector<float> dw_unit(static_cast<size_t>(S * k));
  handle_->combine_backward(d_slot.data(), ones.data(), H, dtype_of<T>(), dy_exp.data(),
                            dw_unit.data());
  double t1 = now_s();
  times_.combine += t1 - t0;

  Matrix<T> d_recv = Matrix<T>::Zero(handle_->recv_rows(), H);
  for (int e = 0; e < E; ++e) {
    if (block_rows_[e] == 0) continue;
    d_recv.middleRows(block_off_[e], block_rows_[e]) =
        experts[e].backward(dy_exp.middleRows(block_off_[e], block_rows_[e]));
  }
  double t2 = now_s();
  times_.experts += t2 - t1;

  Matrix<T> dx_rep(S * k, H);
  handle_->dispatch_backward(d_recv.data(), H, dtype_of<T>(), dx_rep.data());
  double t3 = now_s();
  times_.a2a += t3 - t2;

  for (int64_t t = 0; t < S; ++t)
    for (int i = 0; i < k; ++i) dx.row(t) += dx_rep.row(t * k + i);
  double t4 = now_s();
  times_.permute += t4 - t3;

  // Gate: dL/dp at the kept experts, through the softmax, plus the aux loss gradient.
  Matrix<T> dlogits = Matrix<T>::Zero(S, N);
  for (int64_t t = 0; t < S; ++t) {
    Eigen::Matrix<T, 1, Eigen::Dynamic> dp = Eigen::Matrix<T, 1, Eigen::Dynamic>::Zero(N);
    for (int i = 0; i < k; ++i) {
      const int32_t e = routing_.expert(t, i);
      if (e >= 0) dp(e) += dw(t, i);
    }
    const T dot = probs_.row(t).dot(dp);
    dlogits.row(t) = probs_.row(t).array() * (dp.array() - dot);
  }
  if (aux_grad_.size() > 0 && cfg_.aux_weight != 0)
    dlogits += (cfg_.aux_weight * aux_grad_).template cast<T>();
  dx += gate.backward(dlogits);
  times_.gate += now_s() - t4;
  return dx;
}

template <typename T>
std::vector<NamedParam<T>> MoeLayer<T>::dense_params() {
  std::vector<NamedParam<T>> out;
  for (auto& p : gate.params()) out.push_back({"gate." + p.name, p.param});
  for (auto& p : norm.params()) out.push_back({"norm." + p.name, p.param});
  return out;
}

template <typename T>
std::vector<NamedParam<T>> MoeLayer<T>::expert_params() {
  std::vector<NamedParam<T>> out;
  for (size_t e = 0; e < experts.size(); ++e)
    for (auto& p : experts[e].params()) out.push_back({str("expert", e, ".", p.name), p.param});
  return out;
}

template class MoeLayer<float>;
template class MoeLayer<double>;

}  // namespace tamoe::train::moe
