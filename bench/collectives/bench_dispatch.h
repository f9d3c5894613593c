// Shared pieces of tamoe-bench-dispatch: the options, the routing and data generators (host), and
// the measured rows. The measuring code (bench_dispatch_measure.cc) needs CUDA + NCCL.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "collectives/groups.h"
#include "collectives/types.h"

namespace tamoe::coll {
class NcclGroups;
}

namespace tamoe::bench {

struct DispatchCase {
  int64_t hidden = 7168;
  int k = 8;
};

struct DispatchOptions {
  int64_t tokens = 4096;  // per rank
  int experts_per_rank = 32;
  std::vector<DispatchCase> cases = {{7168, 8}, {4096, 2}};
  std::vector<coll::DType> dtypes = {coll::DType::bf16};
  std::vector<std::string> patterns = {"uniform", "zipf"};
  double zipf_s = 1.0;
  uint64_t seed = 1;
  std::string algo = "nccl";  // DeviceAllToAll algorithm for the tamoe path
  int warmup = 5, iters = 20;
  int kernel_iters = 50;
};

// One timed operation of one point; seconds per iteration, max over ranks.
struct OpRow {
  std::string op;         // dispatch_full, dispatch, combine, nccl_dispatch, nccl_combine
  std::string vs;         // the NCCL row this one is compared with ("" for NCCL rows)
  double size_bytes = 0;  // largest per-rank send volume of the data movement
  std::vector<double> seconds;
  int64_t wrong = 0;    // wrong elements over all ranks and checks
  int64_t checked = 0;  // elements checked over all ranks
};

// One kernel timed alone on this rank (rank 0's numbers are reported).
struct KernelRow {
  std::string kernel;  // permute_slots, permute_rows, unpermute_combine, reorder
  double bytes = 0;    // fewest bytes read + written (each input once, each output once)
  std::vector<double> seconds;
};

struct PointResult {
  DispatchCase c;
  coll::DType dtype = coll::DType::bf16;
  std::string pattern;
  int64_t send_rows = 0, recv_rows = 0;  // this rank (rank 0 in the report)
  std::string path;  // tamoe's flat-NCCL data path: "direct" blocks or "staged" + reorder
  std::vector<OpRow> ops;
  std::vector<KernelRow> kernels;
};

// Routing of `tokens` tokens of rank `rank`: k distinct global experts per token out of
// nexperts, uniform or zipf-skewed (popularity 1/(r+1)^s over a seeded shuffle of the experts
// that every rank shares, so the hot experts land on random ranks); weights positive, summing to
// 1 per token. Deterministic in (seed, rank, pattern). Throws invalid_argument when k > nexperts
// or the pattern is unknown.
void make_routing(const std::string& pattern, double zipf_s, uint64_t seed, int rank,
                  int64_t tokens, int k, int nexperts, std::vector<int32_t>* ids,
                  std::vector<float>* weights);

// Element c of token row (rank, token) in data set `salt`: a small integer in [-64, 63] (exact in
// bf16, f32, f64), different for every row, so a misplaced row is always seen.
inline uint64_t row_hash(int rank, int64_t token, uint64_t salt) {
  uint64_t z = (static_cast<uint64_t>(rank) << 40) ^ (static_cast<uint64_t>(token) << 1) ^
               (salt * 0xD1B54A32D192ED03ull) ^ 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline int xval(uint64_t rowh, int64_t c) {
  return static_cast<int>(((rowh + static_cast<uint64_t>(c)) * 0x9E3779B97F4A7C15ull) >> 57) - 64;
}
// The stand-in expert adds a small per-expert offset so the combine weights of a token's k
// slots are told apart: y = x + expert_offset(global expert).
inline int expert_offset(int global_expert) {
  return global_expert % 29 - 14;
}

// Measures one point: all ranks call it together. Throws Status::unavailable without a device.
PointResult measure_point(const coll::NcclGroups& n, const DispatchOptions& o,
                          const DispatchCase& c, coll::DType dtype, const std::string& pattern);

// Device-to-device cudaMemcpyAsync bandwidth in GB/s counting read + write bytes (median of
// `iters` copies of `bytes`).
double copy_bw_gbps(size_t bytes, int iters);

}  // namespace tamoe::bench
