#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "catch_compat.h"
#include "runtime/error.h"
#include "train/dataset.h"
#include "train/idx_reader.h"

using namespace tamoe::train;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("tamoe_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<unsigned char> be32(uint32_t v) {
  return {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
          static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
}

// An idx file: magic, dims (big-endian), data; gzip or plain; cut to `keep` bytes if >= 0.
void write_idx(const fs::path& path, uint32_t magic, const std::vector<uint32_t>& dims,
               const std::vector<unsigned char>& data, bool gzip, long keep = -1) {
  std::vector<unsigned char> bytes = be32(magic);
  for (uint32_t d : dims) {
    auto b = be32(d);
    bytes.insert(bytes.end(), b.begin(), b.end());
  }
  bytes.insert(bytes.end(), data.begin(), data.end());
  if (gzip) {
    const fs::path full = path.string() + ".full";
    gzFile g = gzopen(full.c_str(), "wb");
    REQUIRE(g != nullptr);
    REQUIRE(gzwrite(g, bytes.data(), static_cast<unsigned>(bytes.size())) ==
            static_cast<int>(bytes.size()));
    gzclose(g);
    std::ifstream in(full, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    fs::remove(full);
  }
  if (keep >= 0) bytes.resize(static_cast<size_t>(keep));
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

std::vector<unsigned char> pixels(int n, int rows, int cols) {
  std::vector<unsigned char> p(static_cast<size_t>(n) * rows * cols);
  for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<unsigned char>((i * 37 + 11) % 256);
  return p;
}

std::vector<unsigned char> labels(int n, int classes) {
  std::vector<unsigned char> l(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) l[i] = static_cast<unsigned char>((i * 7) % classes);
  return l;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const tamoe::Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("idx: gzip and plain files load the same normalized data", "[train][data]") {
  const fs::path d = temp_dir("idx_ok");
  const int n = 5, r = 3, c = 4;
  for (bool gz : {false, true}) {
    const std::string sfx = gz ? ".gz" : "";
    write_idx(d / ("img" + sfx), 0x803, {n, r, c}, pixels(n, r, c), gz);
    write_idx(d / ("lab" + sfx), 0x801, {n}, labels(n, 3), gz);
  }
  const Dataset plain = load_idx_dataset((d / "img").string(), (d / "lab").string(), 3);
  const Dataset gz = load_idx_dataset((d / "img.gz").string(), (d / "lab.gz").string(), 3);
  REQUIRE(plain.size() == n);
  REQUIRE(plain.rows == r);
  REQUIRE(plain.cols == c);
  REQUIRE(plain.images.rows() == n);
  REQUIRE(plain.images.cols() == r * c);
  REQUIRE(plain.images == gz.images);
  REQUIRE(plain.labels == gz.labels);
  const auto px = pixels(n, r, c);
  for (int i = 0; i < n * r * c; ++i) REQUIRE(plain.images.data()[i] == px[i] / 255.0f);
  REQUIRE(plain.labels == std::vector<int>{0, 1, 2, 0, 1});
  REQUIRE(plain.images.minCoeff() >= 0.0f);
  REQUIRE(plain.images.maxCoeff() <= 1.0f);

  const Dataset first2 = load_idx_dataset((d / "img.gz").string(), (d / "lab.gz").string(), 3, 2);
  REQUIRE(first2.size() == 2);
  REQUIRE(first2.images == plain.images.topRows(2));

  REQUIRE(find_idx_file(d.string(), "img") == (d / "img").string());
  fs::remove(d / "img");
  REQUIRE(find_idx_file(d.string(), "img") == (d / "img.gz").string());
  const std::string e = error_of([&] { find_idx_file(d.string(), "nothere"); });
  REQUIRE(contains(e, (d / "nothere").string()));
  REQUIRE(contains(e, (d / "nothere.gz").string()));
  fs::remove_all(d);
}

TEST_CASE("idx: bad files are rejected naming the file and the problem", "[train][data]") {
  const fs::path d = temp_dir("idx_bad");
  const int n = 6, r = 2, c = 2;
  write_idx(d / "img.gz", 0x803, {n, r, c}, pixels(n, r, c), true);
  write_idx(d / "lab.gz", 0x801, {n}, labels(n, 10), true);
  const std::string img = (d / "img.gz").string(), lab = (d / "lab.gz").string();

  SECTION("missing file") {
    const std::string e = error_of([&] { read_idx_images((d / "none.gz").string()); });
    REQUIRE(contains(e, "none.gz"));
    REQUIRE(contains(e, "No such file"));
  }
  SECTION("swapped files: wrong magic") {
    std::string e = error_of([&] { load_idx_dataset(lab, img); });
    REQUIRE(contains(e, lab));
    REQUIRE(contains(e, "0x00000803"));
    REQUIRE(contains(e, "a labels file"));
    e = error_of([&] { read_idx_labels(img); });
    REQUIRE(contains(e, "an images file"));
  }
  SECTION("not an idx file at all") {
    std::ofstream((d / "text").string()) << "hello world, not idx";
    const std::string e = error_of([&] { read_idx_images((d / "text").string()); });
    REQUIRE(contains(e, "idx magic"));
  }
  SECTION("counts disagree") {
    write_idx(d / "lab5.gz", 0x801, {n - 1}, labels(n - 1, 10), true);
    const std::string e = error_of([&] { load_idx_dataset(img, (d / "lab5.gz").string()); });
    REQUIRE(contains(e, "lab5.gz"));
    REQUIRE(contains(e, "6"));
    REQUIRE(contains(e, "found 5 labels"));
  }
  SECTION("label out of range") {
    auto l = labels(n, 10);
    l[4] = 10;
    write_idx(d / "lab10.gz", 0x801, {n}, l, true);
    const std::string e = error_of([&] { load_idx_dataset(img, (d / "lab10.gz").string()); });
    REQUIRE(contains(e, "label 4"));
    REQUIRE(contains(e, "0..9"));
    REQUIRE(contains(e, "found 10"));
  }
  SECTION("bad dimensions") {
    write_idx(d / "zero.gz", 0x803, {n, 0, c}, {}, true);
    const std::string e = error_of([&] { read_idx_images((d / "zero.gz").string()); });
    REQUIRE(contains(e, "image dimensions"));
    REQUIRE(contains(e, "0 x 2"));
  }
  SECTION("truncated plain file") {
    write_idx(d / "short", 0x803, {n, r, c}, pixels(n, r, c), false, 16 + 10);
    const std::string e = error_of([&] { read_idx_images((d / "short").string()); });
    REQUIRE(contains(e, "short"));
    REQUIRE(contains(e, "24 bytes of pixel data"));
    REQUIRE(contains(e, "found 10 bytes"));
    REQUIRE(contains(e, "truncated"));
    // The first 2 images are intact and can still be read.
    REQUIRE(read_idx_images((d / "short").string(), 2).count == 2);
  }
  SECTION("a header claiming a billion images") {
    write_idx(d / "huge.gz", 0x803, {1000000000u, 28, 28}, pixels(2, 28, 28), true);
    const std::string e = error_of([&] { read_idx_images((d / "huge.gz").string()); });
    REQUIRE(contains(e, "784000000000 bytes of pixel data"));
    REQUIRE(contains(e, "found 1568 bytes (file truncated"));
  }
  SECTION("truncated gzip stream") {
    const int big = 2000;
    write_idx(d / "full.gz", 0x803, {big, 8, 8}, pixels(big, 8, 8), true);
    const auto size = static_cast<long>(fs::file_size(d / "full.gz"));
    write_idx(d / "cut.gz", 0x803, {big, 8, 8}, pixels(big, 8, 8), true, size / 2);
    const std::string e = error_of([&] { read_idx_images((d / "cut.gz").string()); });
    REQUIRE(contains(e, "cut.gz"));
    REQUIRE(contains(e, "truncated"));
  }
  SECTION("classes bound") {
    const std::string e = error_of([&] { load_idx_dataset(img, lab, 3); });
    REQUIRE(contains(e, "0..2"));
  }
  fs::remove_all(d);
}

TEST_CASE("normalization: standardized pixels have mean 0 and stddev 1", "[train][data]") {
  Dataset d;
  d.rows = 2;
  d.cols = 3;
  d.classes = 2;
  d.images.resize(4, 6);
  for (int i = 0; i < 24; ++i) d.images.data()[i] = static_cast<float>(i % 7) / 7.0f;
  d.labels = {0, 1, 0, 1};
  double mean = 0, sq = 0;
  for (int i = 0; i < 24; ++i) mean += d.images.data()[i] / 24.0;
  for (int i = 0; i < 24; ++i)
    sq += (d.images.data()[i] - mean) * (d.images.data()[i] - mean) / 24.0;
  const Normalization n = fit_normalization(d);
  REQUIRE(n.mean == Catch::Approx(mean).epsilon(1e-6));
  REQUIRE(n.stddev == Catch::Approx(std::sqrt(sq)).epsilon(1e-6));
  standardize(d, n);
  REQUIRE(d.images.mean() == Catch::Approx(0.0).margin(1e-6));
  REQUIRE(std::sqrt(d.images.array().square().mean()) == Catch::Approx(1.0).epsilon(1e-5));
  REQUIRE_THROWS_AS(standardize(d, Normalization{0.0f, 0.0f}), tamoe::Error);
}

TEST_CASE("batches: deterministic shuffles, rank shards partition each global batch",
          "[train][data]") {
  const int64_t n = 103, b = 4;
  BatchSampler a(n, b, 42), same(n, b, 42), other(n, b, 43);
  a.set_epoch(0);
  same.set_epoch(0);
  other.set_epoch(0);
  REQUIRE(a.batches() == 25);
  std::vector<int64_t> ea, eo;
  std::set<int64_t> seen;
  for (int64_t i = 0; i < a.batches(); ++i) {
    const auto x = a.batch(i);
    REQUIRE(std::vector<int64_t>(x.begin(), x.end()) ==
            std::vector<int64_t>(same.batch(i).begin(), same.batch(i).end()));
    ea.insert(ea.end(), x.begin(), x.end());
    eo.insert(eo.end(), other.batch(i).begin(), other.batch(i).end());
    for (int64_t s : x) {
      REQUIRE(s >= 0);
      REQUIRE(s < n);
      seen.insert(s);
    }
  }
  REQUIRE(seen.size() == 100);  // no repeats within an epoch
  REQUIRE(ea != eo);            // the seed matters
  a.set_epoch(1);
  std::vector<int64_t> e1;
  for (int64_t i = 0; i < a.batches(); ++i)
    e1.insert(e1.end(), a.batch(i).begin(), a.batch(i).end());
  REQUIRE(e1 != ea);  // a new order every epoch
  a.set_epoch(0);
  REQUIRE(std::vector<int64_t>(a.batch(3).begin(), a.batch(3).end()) ==
          std::vector<int64_t>(ea.begin() + 12, ea.begin() + 16));  // epochs replay

  // P ranks with batch b: rank r takes every P-th sample of the single-rank batch of b*P.
  for (int ranks : {1, 2, 3, 4}) {
    BatchSampler global(n, b * ranks, 7);
    global.set_epoch(5);
    std::vector<BatchSampler> shard;
    for (int r = 0; r < ranks; ++r) {
      shard.emplace_back(n, b, 7, r, ranks);
      shard.back().set_epoch(5);
      REQUIRE(shard.back().batches() == global.batches());
    }
    for (int64_t i = 0; i < global.batches(); ++i)
      for (int r = 0; r < ranks; ++r)
        for (int64_t k = 0; k < b; ++k)
          REQUIRE(shard[r].batch(i)[k] == global.batch(i)[r + k * ranks]);
  }
  REQUIRE_THROWS_AS(BatchSampler(7, 4, 1, 0, 2), tamoe::Error);  // no global batch fits
  REQUIRE_THROWS_AS(BatchSampler(100, 4, 1, 2, 2), tamoe::Error);
  REQUIRE_THROWS_AS(a.batch(a.batches()), tamoe::Error);

  REQUIRE(shard_indices(10, 1, 3) == std::vector<int64_t>{1, 4, 7});
  REQUIRE(shard_indices(2, 2, 3).empty());
  Dataset d;
  d.images = MatrixRf::Random(5, 3);
  d.labels = {0, 1, 2, 3, 4};
  MatrixRf x;
  std::vector<int> y;
  const std::vector<int64_t> idx{4, 1};
  gather_batch(d, idx, x, y);
  REQUIRE(x.row(0) == d.images.row(4));
  REQUIRE(x.row(1) == d.images.row(1));
  REQUIRE(y == std::vector<int>{4, 1});
}

TEST_CASE("fashion-mnist: the installed data set loads", "[train][data]") {
  if (!fashion_mnist_available()) {
    WARN("Fashion-MNIST not found in " << kFashionMnistDir
                                       << " (Debian package dataset-fashion-mnist): skipped");
    return;
  }
  const Dataset test = load_fashion_mnist(Split::test);
  REQUIRE(test.size() == 10000);
  REQUIRE(test.rows == 28);
  REQUIRE(test.cols == 28);
  std::vector<int> per_class(10, 0);
  for (int y : test.labels) ++per_class.at(static_cast<size_t>(y));
  for (int c : per_class) REQUIRE(c == 1000);  // the test split is balanced
  const double mean = test.images.mean();
  REQUIRE(mean > 0.2);
  REQUIRE(mean < 0.4);
  const Dataset train = load_fashion_mnist(Split::train, kFashionMnistDir, 500);
  REQUIRE(train.size() == 500);
  REQUIRE(train.images.maxCoeff() == 1.0f);
}
