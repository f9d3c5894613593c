// Fashion-MNIST as float matrices, normalization, and deterministic mini-batches for data
// parallel training.
//
// Batches: every epoch the whole training set is shuffled with a permutation that depends only on
// (seed, epoch), identically on every rank. Global batch b is the slice
// [b*B*P, (b+1)*B*P) of that permutation (B = per-rank batch size, P = ranks); rank r takes every
// P-th sample of it, starting at r. The tail that does not fill a global batch is skipped that
// epoch (a different tail each epoch), so all ranks run the same number of steps.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/tensor.h"

namespace tamoe::train {

// Where the Debian package dataset-fashion-mnist installs the idx files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct Dataset {
  MatrixRf images;          // count x (rows*cols), pixels / 255 in [0, 1] (or standardized)
  std::vector<int> labels;  // count, each in [0, classes)
  int rows = 0;
  int cols = 0;
  int classes = 0;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int features() const { return rows * cols; }
};

enum class Split { train, test };

// Reads an images + labels pair of idx files (plain or gzip) and checks they agree: the same
// count, every label below `classes`. Reads the first max_count samples (all when < 0).
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int classes = 10, int64_t max_count = -1);

// The idx file for `base` ("train-images-idx3-ubyte") in dir: `base` if it exists, else
// `base.gz`; throws naming both paths when neither exists.
std::string find_idx_file(const std::string& dir, const std::string& base);
// True when both files of both splits are present in dir (plain or .gz).
bool fashion_mnist_available(const std::string& dir = kFashionMnistDir);
// train: 60000 samples, test: 10000 (or the first max_count).
Dataset load_fashion_mnist(Split split, const std::string& dir = kFashionMnistDir,
                           int64_t max_count = -1);

struct Normalization {
  float mean = 0.0f;
  float stddev = 1.0f;
};
// Mean and standard deviation over all pixels (computed in double).
Normalization fit_normalization(const Dataset& data);
// x -> (x - mean) / stddev. Apply the training set's statistics to the test set.
void standardize(Dataset& data, const Normalization& norm);

// Indices rank, rank + ranks, ... below n: this rank's share of a data set (evaluation).
std::vector<int64_t> shard_indices(int64_t n, int rank, int ranks);

// Copies the samples `indices` into x (rows in order) and y.
void gather_batch(const Dataset& data, std::span<const int64_t> indices, MatrixRf& x,
                  std::vector<int>& y);

class BatchSampler {
 public:
  // n samples, batch_size per rank, this rank out of ranks. Throws when a global batch
  // (batch_size * ranks) does not fit into n.
  BatchSampler(int64_t n, int64_t batch_size, uint64_t seed, int rank = 0, int ranks = 1);

  // Shuffles for this epoch (a pure function of seed and epoch, so resuming needs only the
  // epoch number and the batch index).
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  // Batches per epoch, the same on every rank.
  int64_t batches() const { return batches_; }
  // This rank's sample indices of global batch b of the current epoch (batch_size of them).
  std::span<const int64_t> batch(int64_t b) const;

 private:
  int64_t n_;
  int64_t batch_size_;
  uint64_t seed_;
  int rank_;
  int ranks_;
  int64_t batches_;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;  // this rank's samples for the epoch, batch after batch
};

}  // namespace tamoe::train
