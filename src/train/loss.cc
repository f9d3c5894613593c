#include "train/loss.h"

#include <cmath>

#include "runtime/error.h"

namespace tamoe::train {
namespace {

template <typename T>
void check_labels(const Matrix<T>& logits, std::span<const int> labels, const char* where) {
  if (static_cast<Eigen::Index>(labels.size()) != logits.rows())
    fail(Status::invalid_argument, where, str(logits.rows(), " labels (one per logits row)"),
         std::to_string(labels.size()));
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= logits.cols())
      fail(Status::invalid_argument, str(where, ": label of row ", i),
           str("a class in 0..", logits.cols() - 1), std::to_string(labels[i]));
}

template <typename T>
Eigen::Index arg_max(const Matrix<T>& logits, Eigen::Index row) {
  Eigen::Index best = 0;
  for (Eigen::Index c = 1; c < logits.cols(); ++c)
    if (logits(row, c) > logits(row, best)) best = c;
  return best;
}

}  // namespace

template <typename T>
CrossEntropy<T> softmax_cross_entropy(const Matrix<T>& logits, std::span<const int> labels) {
  check_labels(logits, labels, "softmax_cross_entropy");
  CrossEntropy<T> out;
  const Eigen::Index n = logits.rows();
  out.grad.resize(n, logits.cols());
  if (n == 0) return out;
  const T inv_n = T(1) / static_cast<T>(n);
  double total = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const T mx = logits.row(i).maxCoeff();
    const auto e = (logits.row(i).array() - mx).exp();
    const T sum = e.sum();
    const int y = labels[i];
    // -log p_y = log sum exp(z - max) - (z_y - max), in double for the running total.
    total += std::log(static_cast<double>(sum)) - static_cast<double>(logits(i, y) - mx);
    out.grad.row(i) = e * (inv_n / sum);
    out.grad(i, y) -= inv_n;
    if (arg_max(logits, i) == y) ++out.correct;
  }
  out.loss = total / static_cast<double>(n);
  return out;
}

template <typename T>
int64_t count_correct(const Matrix<T>& logits, std::span<const int> labels) {
  check_labels(logits, labels, "count_correct");
  int64_t correct = 0;
  for (Eigen::Index i = 0; i < logits.rows(); ++i)
    if (arg_max(logits, i) == labels[i]) ++correct;
  return correct;
}

template CrossEntropy<float> softmax_cross_entropy(const Matrix<float>&, std::span<const int>);
template CrossEntropy<double> softmax_cross_entropy(const Matrix<double>&, std::span<const int>);
template int64_t count_correct(const Matrix<float>&, std::span<const int>);
template int64_t count_correct(const Matrix<double>&, std::span<const int>);

}  // namespace tamoe::train
