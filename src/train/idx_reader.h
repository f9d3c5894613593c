// Reader for the idx files of MNIST / Fashion-MNIST (big-endian header, then unsigned bytes),
// gzip-compressed or plain: zlib's gzread passes uncompressed files through unchanged.
//
//   images: magic 0x00000803, count, rows, cols, then count*rows*cols pixels
//   labels: magic 0x00000801, count, then count labels
//
// Every problem (missing file, wrong magic, implausible dimensions, short data) is a
// tamoe::Error (invalid_input) naming the file, what was expected and what was found.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tamoe::train {

struct IdxImages {
  int64_t count = 0;  // images read (at most max_count)
  int64_t count_in_file = 0;
  int rows = 0;
  int cols = 0;
  std::vector<uint8_t> pixels;  // count x rows x cols, row-major
};

struct IdxLabels {
  int64_t count = 0;
  int64_t count_in_file = 0;
  std::vector<uint8_t> labels;
};

// Reads the first max_count items (all when max_count < 0). Data past max_count is not read, so a
// file truncated beyond that point is not noticed.
IdxImages read_idx_images(const std::string& path, int64_t max_count = -1);
IdxLabels read_idx_labels(const std::string& path, int64_t max_count = -1);

}  // namespace tamoe::train
