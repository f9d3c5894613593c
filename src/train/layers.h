// Dense layers with forward and backward on row-major batch x features matrices. Each layer keeps
// what its backward needs from the last forward (one forward, then one backward); backward adds
// the parameter gradients to Param::grad and returns the gradient with respect to the input.
// Instantiated for float (training) and double (finite-difference checks).
//
// A residual block is y = x + f(x); its backward is dx = dy + f.backward(dy) (residual_add below).
#pragma once

#include <string>
#include <vector>

#include "train/rng.h"
#include "train/tensor.h"

namespace tamoe::train {

enum class Init {
  kaiming_uniform,  // U(-b, b), b = sqrt(6 / fan_in): keeps the variance through ReLU/GELU
  xavier_uniform,   // U(-b, b), b = sqrt(6 / (fan_in + fan_out)): for layers without activation
};

template <typename T>
class Linear {
 public:
  Linear() = default;
  // Weights from `init` drawn from rng (row by row of the in x out weight), bias zero.
  Linear(int in_features, int out_features, Rng& rng, Init init = Init::kaiming_uniform);

  // y = x W + b; x: batch x in_features.
  Matrix<T> forward(const Matrix<T>& x);
  // dy: batch x out_features of the last forward. Returns dx.
  Matrix<T> backward(const Matrix<T>& dy);
  std::vector<NamedParam<T>> params();

  int in_features() const { return static_cast<int>(weight.value.rows()); }
  int out_features() const { return static_cast<int>(weight.value.cols()); }

  Param<T> weight;  // in_features x out_features
  Param<T> bias;    // 1 x out_features

 private:
  Matrix<T> x_;
};

// Per row: y = gamma * (x - mean) / sqrt(var + eps) + beta (biased variance over the features).
template <typename T>
class LayerNorm {
 public:
  LayerNorm() = default;
  explicit LayerNorm(int features, double eps = 1e-5);

  Matrix<T> forward(const Matrix<T>& x);
  Matrix<T> backward(const Matrix<T>& dy);
  std::vector<NamedParam<T>> params();

  int features() const { return static_cast<int>(gamma.value.cols()); }

  Param<T> gamma;  // 1 x features, starts at 1
  Param<T> beta;   // 1 x features, starts at 0

 private:
  double eps_ = 1e-5;
  Matrix<T> xhat_;
  Eigen::Matrix<T, Eigen::Dynamic, 1> rstd_;  // 1 / sqrt(var + eps) per row
};

template <typename T>
class ReLU {
 public:
  Matrix<T> forward(const Matrix<T>& x);
  Matrix<T> backward(const Matrix<T>& dy);

 private:
  Matrix<T> x_;
};

// The exact GELU, x * Phi(x) with the normal CDF Phi (erf form).
template <typename T>
class GELU {
 public:
  Matrix<T> forward(const Matrix<T>& x);
  Matrix<T> backward(const Matrix<T>& dy);

 private:
  Matrix<T> x_;
};

// y = x + fx (shapes must agree). The gradient reaches both x and f's input: dx = dy + df/dx.
template <typename T>
Matrix<T> residual_add(const Matrix<T>& x, const Matrix<T>& fx);

// One expert's feed-forward block, Linear(d_model, d_hidden) -> GELU -> Linear(d_hidden, d_model),
// run on the block of tokens (rows) routed to that expert; a block may have 0 rows. The MoE layer
// holds E of these. fc1 uses Kaiming init (feeds the GELU), fc2 Xavier.
template <typename T>
class ExpertFFN {
 public:
  ExpertFFN() = default;
  ExpertFFN(int d_model, int d_hidden, Rng& rng);

  Matrix<T> forward(const Matrix<T>& x);
  Matrix<T> backward(const Matrix<T>& dy);
  // "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias".
  std::vector<NamedParam<T>> params();

  int d_model() const { return fc1.in_features(); }
  int d_hidden() const { return fc1.out_features(); }

  Linear<T> fc1;
  GELU<T> act;
  Linear<T> fc2;
};

}  // namespace tamoe::train
