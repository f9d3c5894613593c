#include "train/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "runtime/error.h"

namespace tamoe::train {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;
// Far above MNIST's 28 x 28; guards against reading a huge count from a corrupt header.
constexpr int kMaxSide = 4096;

// gzFile with RAII; reads plain files transparently.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      const int err = errno;
      fail(Status::invalid_input, path, "a readable idx file (plain or .gz)",
           err != 0 ? std::string(std::strerror(err)) : std::string("gzopen failed"));
    }
    gzbuffer(file_, 1 << 17);
  }
  ~GzReader() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads exactly n bytes into out (resized to n) or throws naming `what`. The buffer grows as data
  // arrives, so a corrupt header claiming billions of items ends in a "truncated" error, not in
  // an allocation of that size.
  void read(std::vector<uint8_t>& out, size_t n, const std::string& what) {
    constexpr size_t kChunk = size_t{16} << 20;
    out.clear();
    out.reserve(std::min(n, kChunk));
    size_t done = 0;
    while (done < n) {
      const size_t chunk = std::min(n - done, kChunk);
      out.resize(done + chunk);
      const int got = gzread(file_, out.data() + done, static_cast<unsigned>(chunk));
      if (got < 0) {
        int code = 0;
        const char* msg = gzerror(file_, &code);
        fail(Status::invalid_input, path_, str(n, " bytes of ", what),
             str("a read error after ", done, " bytes (", msg != nullptr ? msg : "?", ")"));
      }
      done += static_cast<size_t>(got);
      if (static_cast<size_t>(got) < chunk) break;
    }
    if (done < n) {
      // A truncated gzip stream reports "unexpected end of file" through gzerror.
      int code = 0;
      const char* msg = gzerror(file_, &code);
      fail(Status::invalid_input, path_, str(n, " bytes of ", what),
           str(done, " bytes (file truncated",
               code != Z_OK && msg != nullptr ? std::string(": ") + msg : std::string(), ")"));
    }
  }

  uint32_t read_be32(const std::string& what) {
    std::vector<uint8_t> b;
    read(b, 4, what);
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

int64_t items_to_read(int64_t in_file, int64_t max_count) {
  return max_count < 0 ? in_file : std::min(in_file, max_count);
}

}  // namespace

IdxImages read_idx_images(const std::string& path, int64_t max_count) {
  GzReader in(path);
  const uint32_t magic = in.read_be32("idx header (magic)");
  if (magic != kImagesMagic) {
    fail(Status::invalid_input, path + ": idx magic",
         str(hex(kImagesMagic), " (unsigned bytes, 3 dimensions: an images file)"),
         magic == kLabelsMagic ? hex(magic) + " (a labels file)" : hex(magic));
  }
  IdxImages out;
  const uint32_t count = in.read_be32("idx header (count)");
  const uint32_t rows = in.read_be32("idx header (rows)");
  const uint32_t cols = in.read_be32("idx header (cols)");
  if (rows == 0 || cols == 0 || rows > kMaxSide || cols > kMaxSide) {
    fail(Status::invalid_input, path + ": image dimensions", str("1..", kMaxSide, " per side"),
         str(rows, " x ", cols));
  }
  out.count_in_file = count;
  out.count = items_to_read(count, max_count);
  out.rows = static_cast<int>(rows);
  out.cols = static_cast<int>(cols);
  in.read(out.pixels, static_cast<size_t>(out.count) * rows * cols,
          str("pixel data (", out.count, " images x ", rows, " x ", cols, ")"));
  return out;
}

IdxLabels read_idx_labels(const std::string& path, int64_t max_count) {
  GzReader in(path);
  const uint32_t magic = in.read_be32("idx header (magic)");
  if (magic != kLabelsMagic) {
    fail(Status::invalid_input, path + ": idx magic",
         str(hex(kLabelsMagic), " (unsigned bytes, 1 dimension: a labels file)"),
         magic == kImagesMagic ? hex(magic) + " (an images file)" : hex(magic));
  }
  IdxLabels out;
  const uint32_t count = in.read_be32("idx header (count)");
  out.count_in_file = count;
  out.count = items_to_read(count, max_count);
  in.read(out.labels, static_cast<size_t>(out.count), str("labels (", out.count, " labels)"));
  return out;
}

}  // namespace tamoe::train
