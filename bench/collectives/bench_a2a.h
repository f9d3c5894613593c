// Shared pieces of tamoe-bench-a2a: one measured point and the device runner.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "collectives/alltoallv.h"

namespace tamoe::bench {

struct Point {
  std::string pattern, algo;
  double size_bytes = 0;        // largest per-rank send volume (nccl-tests "size" of alltoall)
  double pair_bytes = 0;        // mean bytes per rank pair
  std::vector<double> seconds;  // per iteration, max over ranks
  int64_t wrong = 0;            // wrong elements over all ranks and iterations
};

// Word value of element idx from src to dst in iteration it; every iteration differs.
inline uint32_t word(int src, int dst, int64_t idx, int it) {
  uint64_t h = (static_cast<uint64_t>(src) << 40) ^ (static_cast<uint64_t>(dst) << 20) ^
               static_cast<uint64_t>(idx) ^ (static_cast<uint64_t>(it) << 56);
  h *= 0x9E3779B97F4A7C15ull;
  return static_cast<uint32_t>(h >> 32);
}

// Runs the device algorithms ("nccl", "hier", "hier_inter_first", "nccl_alltoall") on counts in
// 4-byte words; appends points. Throws Status::unavailable without a device (or CUDA build).
void run_device(const coll::Groups& g, const coll::CountMatrix& words, const std::string& pattern,
                const std::vector<std::string>& algos, int warmup, int iters, int repeats,
                std::vector<Point>* out);

}  // namespace tamoe::bench
