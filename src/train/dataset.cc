#include "train/dataset.h"

#include <cmath>
#include <filesystem>
#include <numeric>

#include "runtime/error.h"
#include "train/idx_reader.h"
#include "train/rng.h"

namespace tamoe::train {

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int classes, int64_t max_count) {
  TAMOE_CHECK_ARG(classes >= 1 && classes <= 256, "load_idx_dataset", "classes in 1..256",
                  std::to_string(classes));
  const IdxImages img = read_idx_images(images_path, max_count);
  const IdxLabels lab = read_idx_labels(labels_path, max_count);
  if (img.count_in_file != lab.count_in_file) {
    fail(Status::invalid_input, labels_path,
         str("as many labels as ", images_path, " has images (", img.count_in_file, ")"),
         str(lab.count_in_file, " labels"));
  }
  Dataset d;
  d.rows = img.rows;
  d.cols = img.cols;
  d.classes = classes;
  const int64_t n = img.count;
  const int64_t f = static_cast<int64_t>(img.rows) * img.cols;
  d.images.resize(n, f);
  float* dst = d.images.data();
  for (int64_t i = 0; i < n * f; ++i) dst[i] = static_cast<float>(img.pixels[i]) / 255.0f;
  d.labels.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const int y = lab.labels[i];
    if (y >= classes) {
      fail(Status::invalid_input, str(labels_path, ": label ", i),
           str("a class in 0..", classes - 1), std::to_string(y));
    }
    d.labels[i] = y;
  }
  return d;
}

std::string find_idx_file(const std::string& dir, const std::string& base) {
  namespace fs = std::filesystem;
  const fs::path plain = fs::path(dir) / base;
  const fs::path gz = fs::path(dir) / (base + ".gz");
  std::error_code ec;
  if (fs::is_regular_file(plain, ec)) return plain.string();
  if (fs::is_regular_file(gz, ec)) return gz.string();
  fail(Status::invalid_input, "Fashion-MNIST",
       str(plain.string(), " or ", gz.string(), " (Debian package dataset-fashion-mnist)"),
       "neither file");
}

namespace {
const char* images_base(Split s) {
  return s == Split::train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
}
const char* labels_base(Split s) {
  return s == Split::train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
}
}  // namespace

bool fashion_mnist_available(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (Split s : {Split::train, Split::test}) {
    for (const char* base : {images_base(s), labels_base(s)}) {
      const fs::path p = fs::path(dir) / base;
      if (!fs::is_regular_file(p, ec) && !fs::is_regular_file(fs::path(p.string() + ".gz"), ec))
        return false;
    }
  }
  return true;
}

Dataset load_fashion_mnist(Split split, const std::string& dir, int64_t max_count) {
  return load_idx_dataset(find_idx_file(dir, images_base(split)),
                          find_idx_file(dir, labels_base(split)), 10, max_count);
}

Normalization fit_normalization(const Dataset& data) {
  const Eigen::Index n = data.images.size();
  TAMOE_CHECK_ARG(n > 0, "fit_normalization", "a non-empty data set", "0 pixels");
  double sum = 0, sq = 0;
  const float* p = data.images.data();
  for (Eigen::Index i = 0; i < n; ++i) {
    sum += p[i];
    sq += static_cast<double>(p[i]) * p[i];
  }
  const double mean = sum / static_cast<double>(n);
  const double var = std::max(0.0, sq / static_cast<double>(n) - mean * mean);
  Normalization out;
  out.mean = static_cast<float>(mean);
  // A constant image set would divide by zero; keep it unscaled.
  out.stddev = var > 0 ? static_cast<float>(std::sqrt(var)) : 1.0f;
  return out;
}

void standardize(Dataset& data, const Normalization& norm) {
  TAMOE_CHECK_ARG(norm.stddev > 0 && std::isfinite(norm.stddev), "standardize",
                  "a positive finite stddev", std::to_string(norm.stddev));
  data.images.array() = (data.images.array() - norm.mean) / norm.stddev;
}

std::vector<int64_t> shard_indices(int64_t n, int rank, int ranks) {
  TAMOE_CHECK_ARG(ranks >= 1 && rank >= 0 && rank < ranks, "shard_indices", "0 <= rank < ranks",
                  str("rank ", rank, " of ", ranks));
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n / ranks + 1));
  for (int64_t i = rank; i < n; i += ranks) out.push_back(i);
  return out;
}

void gather_batch(const Dataset& data, std::span<const int64_t> indices, MatrixRf& x,
                  std::vector<int>& y) {
  const auto m = static_cast<Eigen::Index>(indices.size());
  x.resize(m, data.images.cols());
  y.resize(indices.size());
  for (Eigen::Index i = 0; i < m; ++i) {
    const int64_t s = indices[i];
    if (s < 0 || s >= data.size())
      fail(Status::invalid_argument, "gather_batch", str("sample indices in 0..", data.size() - 1),
           std::to_string(s));
    x.row(i) = data.images.row(s);
    y[i] = data.labels[s];
  }
}

BatchSampler::BatchSampler(int64_t n, int64_t batch_size, uint64_t seed, int rank, int ranks)
    : n_(n), batch_size_(batch_size), seed_(seed), rank_(rank), ranks_(ranks) {
  TAMOE_CHECK_ARG(ranks >= 1 && rank >= 0 && rank < ranks, "BatchSampler", "0 <= rank < ranks",
                  str("rank ", rank, " of ", ranks));
  TAMOE_CHECK_ARG(batch_size >= 1, "BatchSampler", "batch_size >= 1", std::to_string(batch_size));
  batches_ = n / (batch_size * ranks);
  TAMOE_CHECK_ARG(batches_ >= 1, "BatchSampler",
                  str("at least one global batch of ", batch_size, " x ", ranks, " samples"),
                  str(n, " samples"));
}

void BatchSampler::set_epoch(int64_t epoch) {
  if (epoch == epoch_) return;
  // One stream per epoch, derived from both numbers, so epochs can be replayed in any order.
  Rng rng(seed_ ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(epoch + 1)));
  std::vector<int64_t> perm(static_cast<size_t>(n_));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  for (int64_t i = n_ - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    std::swap(perm[i], perm[j]);
  }
  order_.resize(static_cast<size_t>(batches_ * batch_size_));
  for (int64_t b = 0; b < batches_; ++b)
    for (int64_t k = 0; k < batch_size_; ++k)
      order_[b * batch_size_ + k] = perm[b * batch_size_ * ranks_ + rank_ + k * ranks_];
  epoch_ = epoch;
}

std::span<const int64_t> BatchSampler::batch(int64_t b) const {
  if (epoch_ < 0)
    fail(Status::invalid_argument, "BatchSampler::batch", "set_epoch() first", "none");
  TAMOE_CHECK_ARG(b >= 0 && b < batches_, "BatchSampler::batch",
                  str("a batch in 0..", batches_ - 1), std::to_string(b));
  return std::span<const int64_t>(order_).subspan(static_cast<size_t>(b * batch_size_),
                                                  static_cast<size_t>(batch_size_));
}

}  // namespace tamoe::train
