// Dense tensors of the training code: row-major Eigen matrices (batch x features) and a parameter
// (value + accumulated gradient of the same shape). Layers are templates on the scalar so the
// same code trains in float and is checked against finite differences in double.
#pragma once

#include <Eigen/Core>
#include <string>
#include <vector>

namespace tamoe::train {

template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixRf = Matrix<float>;
using MatrixRd = Matrix<double>;

template <typename T>
struct Param {
  Matrix<T> value;
  Matrix<T> grad;  // backward() adds to it; zero it before each step (ParamRegistry::zero_grad)

  Param() = default;
  Param(Eigen::Index rows, Eigen::Index cols)
      : value(Matrix<T>::Zero(rows, cols)), grad(Matrix<T>::Zero(rows, cols)) {}
};

// A parameter and its name inside the layer that owns it ("weight", "fc1.bias").
template <typename T>
struct NamedParam {
  std::string name;
  Param<T>* param = nullptr;
};

}  // namespace tamoe::train
