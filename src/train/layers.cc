#include "train/layers.h"

#include <cmath>
#include <numbers>

#include "runtime/error.h"

namespace tamoe::train {
namespace {

template <typename T>
void check_cols(const Matrix<T>& m, Eigen::Index cols, const char* where, const char* what) {
  if (m.cols() != cols)
    fail(Status::invalid_argument, where, str(what, " with ", cols, " columns"),
         str(m.rows(), " x ", m.cols()));
}

template <typename T>
void check_backward(const Matrix<T>& dy, const Matrix<T>& cached, Eigen::Index cols,
                    const char* where) {
  if (dy.rows() != cached.rows() || dy.cols() != cols)
    fail(Status::invalid_argument, where,
         str("dy of ", cached.rows(), " x ", cols, " (the shape of the last forward's output)"),
         str(dy.rows(), " x ", dy.cols()));
}

template <typename T>
std::vector<NamedParam<T>> prefixed(const std::string& prefix, std::vector<NamedParam<T>> in) {
  for (auto& p : in) p.name = prefix + p.name;
  return in;
}

}  // namespace

template <typename T>
Linear<T>::Linear(int in_features, int out_features, Rng& rng, Init init)
    : weight(in_features, out_features), bias(1, out_features) {
  TAMOE_CHECK_ARG(in_features >= 1 && out_features >= 1, "Linear", "in, out >= 1",
                  str(in_features, ", ", out_features));
  const double bound = init == Init::kaiming_uniform
                           ? std::sqrt(6.0 / in_features)
                           : std::sqrt(6.0 / (in_features + out_features));
  for (Eigen::Index i = 0; i < weight.value.size(); ++i)
    weight.value.data()[i] = static_cast<T>(rng.uniform(-bound, bound));
}

template <typename T>
Matrix<T> Linear<T>::forward(const Matrix<T>& x) {
  check_cols(x, weight.value.rows(), "Linear::forward", "x");
  x_ = x;
  Matrix<T> y = x * weight.value;
  y.rowwise() += bias.value.row(0);
  return y;
}

template <typename T>
Matrix<T> Linear<T>::backward(const Matrix<T>& dy) {
  check_backward(dy, x_, weight.value.cols(), "Linear::backward");
  weight.grad.noalias() += x_.transpose() * dy;
  bias.grad.row(0) += dy.colwise().sum();
  return dy * weight.value.transpose();
}

template <typename T>
std::vector<NamedParam<T>> Linear<T>::params() {
  return {{"weight", &weight}, {"bias", &bias}};
}

template <typename T>
LayerNorm<T>::LayerNorm(int features, double eps)
    : gamma(1, features), beta(1, features), eps_(eps) {
  TAMOE_CHECK_ARG(features >= 1, "LayerNorm", "features >= 1", std::to_string(features));
  TAMOE_CHECK_ARG(eps > 0, "LayerNorm", "eps > 0", std::to_string(eps));
  gamma.value.setOnes();
}

template <typename T>
Matrix<T> LayerNorm<T>::forward(const Matrix<T>& x) {
  check_cols(x, gamma.value.cols(), "LayerNorm::forward", "x");
  const Eigen::Index n = x.rows();
  const T inv_d = T(1) / static_cast<T>(x.cols());
  xhat_.resize(n, x.cols());
  rstd_.resize(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const T mean = x.row(i).sum() * inv_d;
    const auto centered = x.row(i).array() - mean;
    const T var = centered.square().sum() * inv_d;
    rstd_(i) = T(1) / std::sqrt(var + static_cast<T>(eps_));
    xhat_.row(i) = centered * rstd_(i);
  }
  Matrix<T> y = xhat_.array().rowwise() * gamma.value.row(0).array();
  y.rowwise() += beta.value.row(0);
  return y;
}

template <typename T>
Matrix<T> LayerNorm<T>::backward(const Matrix<T>& dy) {
  check_backward(dy, xhat_, gamma.value.cols(), "LayerNorm::backward");
  gamma.grad.row(0) += (dy.array() * xhat_.array()).colwise().sum().matrix();
  beta.grad.row(0) += dy.colwise().sum();
  // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row, with g = dy * gamma.
  const Matrix<T> g = dy.array().rowwise() * gamma.value.row(0).array();
  const T inv_d = T(1) / static_cast<T>(dy.cols());
  Matrix<T> dx(dy.rows(), dy.cols());
  for (Eigen::Index i = 0; i < dy.rows(); ++i) {
    const T mean_g = g.row(i).sum() * inv_d;
    const T mean_gx = g.row(i).dot(xhat_.row(i)) * inv_d;
    dx.row(i) = rstd_(i) * (g.row(i).array() - mean_g - xhat_.row(i).array() * mean_gx);
  }
  return dx;
}

template <typename T>
std::vector<NamedParam<T>> LayerNorm<T>::params() {
  return {{"gamma", &gamma}, {"beta", &beta}};
}

template <typename T>
Matrix<T> ReLU<T>::forward(const Matrix<T>& x) {
  x_ = x;
  return x.cwiseMax(T(0));
}

template <typename T>
Matrix<T> ReLU<T>::backward(const Matrix<T>& dy) {
  check_backward(dy, x_, x_.cols(), "ReLU::backward");
  return (x_.array() > T(0)).select(dy.array(), T(0)).matrix();
}

template <typename T>
Matrix<T> GELU<T>::forward(const Matrix<T>& x) {
  x_ = x;
  const T inv_sqrt2 = static_cast<T>(1.0 / std::numbers::sqrt2);
  return x.unaryExpr([inv_sqrt2](T v) { return T(0.5) * v * (T(1) + std::erf(v * inv_sqrt2)); });
}

template <typename T>
Matrix<T> GELU<T>::backward(const Matrix<T>& dy) {
  check_backward(dy, x_, x_.cols(), "GELU::backward");
  const T inv_sqrt2 = static_cast<T>(1.0 / std::numbers::sqrt2);
  const T inv_sqrt2pi = static_cast<T>(1.0 / std::sqrt(2.0 * std::numbers::pi));
  // d/dx x Phi(x) = Phi(x) + x phi(x).
  const Matrix<T> dgelu = x_.unaryExpr([=](T v) {
    return T(0.5) * (T(1) + std::erf(v * inv_sqrt2)) + v * inv_sqrt2pi * std::exp(T(-0.5) * v * v);
  });
  return dy.cwiseProduct(dgelu);
}

template <typename T>
Matrix<T> residual_add(const Matrix<T>& x, const Matrix<T>& fx) {
  if (x.rows() != fx.rows() || x.cols() != fx.cols())
    fail(Status::invalid_argument, "residual_add", str("f(x) of ", x.rows(), " x ", x.cols()),
         str(fx.rows(), " x ", fx.cols()));
  return x + fx;
}

template <typename T>
ExpertFFN<T>::ExpertFFN(int d_model, int d_hidden, Rng& rng)
    : fc1(d_model, d_hidden, rng, Init::kaiming_uniform),
      fc2(d_hidden, d_model, rng, Init::xavier_uniform) {}

template <typename T>
Matrix<T> ExpertFFN<T>::forward(const Matrix<T>& x) {
  return fc2.forward(act.forward(fc1.forward(x)));
}

template <typename T>
Matrix<T> ExpertFFN<T>::backward(const Matrix<T>& dy) {
  return fc1.backward(act.backward(fc2.backward(dy)));
}

template <typename T>
std::vector<NamedParam<T>> ExpertFFN<T>::params() {
  auto out = prefixed("fc1.", fc1.params());
  auto second = prefixed("fc2.", fc2.params());
  out.insert(out.end(), second.begin(), second.end());
  return out;
}

template class Linear<float>;
template class Linear<double>;
template class LayerNorm<float>;
template class LayerNorm<double>;
template class ReLU<float>;
template class ReLU<double>;
template class GELU<float>;
template class GELU<double>;
template class ExpertFFN<float>;
template class ExpertFFN<double>;
template Matrix<float> residual_add(const Matrix<float>&, const Matrix<float>&);
template Matrix<double> residual_add(const Matrix<double>&, const Matrix<double>&);

}  // namespace tamoe::train
