// Softmax cross-entropy over class logits and classification accuracy.
#pragma once

#include <cstdint>
#include <span>

#include "train/tensor.h"

namespace tamoe::train {

template <typename T>
struct CrossEntropy {
  double loss = 0;      // mean over the rows of -log softmax(logits)[label]
  Matrix<T> grad;       // d loss / d logits = (softmax - onehot) / rows
  int64_t correct = 0;  // rows whose arg max (ties: lower class) is the label
};

// logits: batch x classes; labels: batch entries in [0, classes). Throws naming the row of a bad
// label. A batch of 0 rows gives loss 0 and an empty gradient.
template <typename T>
CrossEntropy<T> softmax_cross_entropy(const Matrix<T>& logits, std::span<const int> labels);

// Rows whose arg max (ties: lower class) equals the label.
template <typename T>
int64_t count_correct(const Matrix<T>& logits, std::span<const int> labels);

}  // namespace tamoe::train
