// Shared pieces of tamoe-bench-a2a: one measured point, a rank's test data, the timed rounds of
// interleaved algorithms (host and device alike) and the device runner.
#pragma once

#include <cstdint>
#include <functional>
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

// This rank's side of a count matrix in 4-byte words, with the test data of every iteration.
struct RankWords {
  RankWords(const coll::CountMatrix& C, int rank);
  int P, me;
  std::vector<int64_t> sc, rc;  // words sent to / received from each rank
  std::vector<int64_t> sd, rd;  // their packed displacements
  int64_t send_words() const;   // buffer sizes, at least 1
  int64_t recv_words() const;
  void fill(uint32_t* send, int it) const;                  // word(me, j, k, it) to rank j
  int64_t count_wrong(const uint32_t* recv, int it) const;  // elements != word(i, me, k, it)
};

// One iteration of one algorithm on this rank: its seconds and wrong elements.
struct Sample {
  double seconds = 0;
  int64_t wrong = 0;
};

// Appends one point per algorithm, then runs `repeats` rounds with the algorithms interleaved, each
// `warmup` untimed and `iters` timed iterations of run_one(algorithm index, iteration number over
// the whole call). Seconds are the max over ranks, wrong elements the sum; all ranks call it.
void run_rounds(const coll::Groups& g, const std::string& pattern,
                const std::vector<std::string>& algos, int warmup, int iters, int repeats,
                const std::function<Sample(size_t algo, int it)>& run_one, std::vector<Point>* out);

// Runs the device algorithms ("nccl", "hier", "hier_inter_first", "nccl_alltoall") on counts in
// 4-byte words; appends points. Throws Status::unavailable without a device (or CUDA build).
void run_device(const coll::Groups& g, const coll::CountMatrix& words, const std::string& pattern,
                const std::vector<std::string>& algos, int warmup, int iters, int repeats,
                std::vector<Point>* out);

}  // namespace tamoe::bench
