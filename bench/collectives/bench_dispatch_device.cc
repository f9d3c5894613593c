// tamoe-bench-dispatch: device MoE dispatch + combine through the tamoe API (DeviceDispatch on
// NCCL) side by side with NCCL's own grouped ncclSend/ncclRecv moving exactly the same bytes per
// peer from pre-laid-out buffers, and the permute kernels alone against the device copy
// bandwidth. One GPU per rank (NCCL).
//
//   mpirun -np 2 tamoe-bench-dispatch                      (4096 tokens/rank, 7168/top-8 and
//                                                           4096/top-2, bf16, uniform and zipf)
//   tamoe-bench-dispatch --cases 7168:8 --dtypes bf16,f32 --patterns zipf --jsonl d.jsonl
//
// Columns: size = largest per-rank send volume of the operation, time avg/p50/p99 (host wall
// clock, barrier to stream sync, max over ranks), algbw = size / p50, busbw = algbw * (P-1)/P
// (0 with one rank: all traffic is self-traffic, no link is crossed; compare algbw then),
// vs_nccl = NCCL's p50 / tamoe's p50 for the same bytes (1.0 = as fast as NCCL alone), #wrong =
// wrong elements in the checks (a poisoned check pass before the timed iterations and the output
// of the last timed iteration, against a host reference). Exit codes: 0, 2 when anything was
// wrong, 77 without a usable GPU per rank (nothing measured), 1 on bad input.
#include <cuda_runtime.h>
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "bench/collectives/bench_dispatch.h"
#include "bench/common/bench_util.h"
#include "collectives/device.h"
#include "runtime/error.h"
#include "runtime/mpi_main.h"
#include "runtime/params.h"
#include "topology/cluster.h"

namespace tamoe::bench {

void make_routing(const std::string& pattern, double zipf_s, uint64_t seed, int rank,
                  int64_t tokens, int k, int nexperts, std::vector<int32_t>* ids,
                  std::vector<float>* weights) {
  if (k < 1 || k > nexperts)
    fail(Status::invalid_argument, "tamoe-bench-dispatch routing",
         str("1 <= k <= ", nexperts, " experts (k distinct experts per token)"), str("k = ", k));
  std::vector<double> pop(nexperts, 1.0);
  if (pattern == "zipf") {
    // Popularity by a shuffle every rank shares (seed only), so hot experts sit on random ranks.
    std::vector<int> order(nexperts);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 shared(seed * 0x9E3779B97F4A7C15ull + 7);
    std::shuffle(order.begin(), order.end(), shared);
    for (int r = 0; r < nexperts; ++r) pop[order[r]] = 1.0 / std::pow(r + 1.0, zipf_s);
  } else if (pattern != "uniform") {
    fail(Status::invalid_argument, "tamoe-bench-dispatch --patterns", "uniform or zipf",
         str("\"", pattern, "\""));
  }
  std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(rank) * 7919u +
                      (pattern == "zipf" ? 1u : 0u));
  std::discrete_distribution<int> pick(pop.begin(), pop.end());
  std::uniform_real_distribution<float> wdist(0.1f, 1.0f);
  ids->assign(static_cast<size_t>(tokens) * k, -1);
  weights->assign(ids->size(), 0.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    int32_t* tid = ids->data() + t * k;
    float* tw = weights->data() + t * k;
    float sum = 0;
    for (int i = 0; i < k; ++i) {
      int e;
      do e = pick(rng);  // rejection keeps the k experts distinct
      while (std::find(tid, tid + i, e) != tid + i);
      tid[i] = e;
      tw[i] = wdist(rng);
      sum += tw[i];
    }
    for (int i = 0; i < k; ++i) tw[i] /= sum;
  }
}

}  // namespace tamoe::bench

using namespace tamoe;
using namespace tamoe::bench;

namespace {

DispatchCase parse_case(const std::string& s) {
  const auto colon = s.find(':');
  if (colon == std::string::npos)
    fail(Status::invalid_argument, "tamoe-bench-dispatch --cases", "HIDDEN:K, e.g. 7168:8",
         str("\"", s, "\""));
  DispatchCase c;
  c.hidden = parse_int(s.substr(0, colon), "--cases hidden");
  c.k = static_cast<int>(parse_int(s.substr(colon + 1), "--cases k"));
  if (c.hidden < 1 || c.k < 1)
    fail(Status::invalid_argument, "tamoe-bench-dispatch --cases", "hidden >= 1 and k >= 1",
         str("\"", s, "\""));
  return c;
}

int run(int argc, char** argv) {
  int rank = 0, P = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  CLI::App app{
      "tamoe-bench-dispatch: device MoE dispatch + combine (tamoe on NCCL) vs NCCL grouped "
      "send/recv of the same bytes, and the permute kernels vs copy bandwidth"};
  DispatchOptions o;
  std::vector<std::string> cases = {"7168:8", "4096:2"}, dtypes = {"bf16"};
  std::string jsonl;
  int64_t copy_mib = 1024;
  app.add_option("--tokens", o.tokens, "tokens per rank (T)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--cases", cases, "HIDDEN:TOPK pairs")->delimiter(',')->capture_default_str();
  app.add_option("--experts-per-rank", o.experts_per_rank, "E (N = P * E experts in all)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--dtypes", dtypes, "bf16, f32, f64")->delimiter(',')->capture_default_str();
  app.add_option("--patterns", o.patterns, "routing: uniform (over experts), zipf")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--zipf-s", o.zipf_s, "zipf exponent")->capture_default_str();
  app.add_option("--seed", o.seed, "routing and data seed")->capture_default_str();
  app.add_option("--algo", o.algo, "tamoe all-to-all: nccl, hier, hier_inter_first")
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed iterations")->capture_default_str();
  app.add_option("--iters", o.iters, "timed iterations")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--kernel-iters", o.kernel_iters, "timed launches per kernel alone")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--copy-mib", copy_mib, "size of the reference device-to-device copy (MiB)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--jsonl", jsonl, "append one JSON line per row to this file");
  if (auto rc = parse_cli(app, argc, argv, rank)) return *rc;
  o.cases.clear();
  for (const auto& s : cases) o.cases.push_back(parse_case(s));
  o.dtypes.clear();
  for (const auto& s : dtypes) o.dtypes.push_back(coll::parse_dtype(s, "--dtypes"));
  for (const auto& c : o.cases)
    for (auto dt : o.dtypes)
      if (c.hidden * coll::dtype_bytes(dt) % 4 != 0)  // NCCL baseline fills 4-byte words
        fail(Status::invalid_argument, "tamoe-bench-dispatch --cases",
             "rows of a multiple of 4 bytes (even hidden for bf16)",
             str("hidden ", c.hidden, " in ", coll::dtype_name(dt)));

  topo::Cluster cluster = topo::Cluster::create(MPI_COMM_WORLD);
  coll::Groups g = coll::Groups::from_cluster(cluster);
  std::unique_ptr<coll::NcclGroups> nccl;
  try {
    nccl = coll::NcclGroups::create(g);  // agrees on every rank: all get a device or none
  } catch (const Error& e) {
    if (e.status() != Status::unavailable) throw;
    if (rank == 0)
      std::fprintf(stderr,
                   "tamoe-bench-dispatch: no usable GPU per rank (%s); nothing was "
                   "measured\n",
                   e.what());
    return 77;
  }
  cudaDeviceProp prop{};
  TAMOE_CHECK_CUDA(cudaGetDeviceProperties(&prop, nccl->device()));
  const double copy_gbps = copy_bw_gbps(static_cast<size_t>(copy_mib) << 20, 20);

  std::vector<PointResult> points;
  for (const auto& c : o.cases)
    for (auto dt : o.dtypes)
      for (const auto& pat : o.patterns) points.push_back(measure_point(*nccl, o, c, dt, pat));

  int64_t wrong = 0;
  for (const auto& p : points)
    for (const auto& r : p.ops) wrong += r.wrong;
  if (rank != 0) return wrong == 0 ? 0 : 2;

  std::printf(
      "# tamoe-bench-dispatch: %d rank(s), %s, GPU %s; tokens/rank %lld, experts/rank %d,"
      " algo %s, %d iters (+%d warmup)\n",
      P, g.describe().c_str(), prop.name, static_cast<long long>(o.tokens), o.experts_per_rank,
      o.algo.c_str(), o.iters, o.warmup);
  if (P == 1)
    std::printf(
        "# one rank: every byte is self-traffic (a device-local copy inside NCCL), busbw "
        "= algbw * (P-1)/P = 0; compare algbw and vs_nccl\n");
  std::printf("# device copy bandwidth (cudaMemcpyAsync D2D %lld MiB, read+write): %.1f GB/s\n",
              static_cast<long long>(copy_mib), copy_gbps);
  std::printf("#%6s %2s %-5s %-8s %-14s %-7s %11s %9s %9s %9s %8s %8s %7s %7s\n", "hidden", "k",
              "dtype", "pattern", "op", "path", "size(B)", "avg(us)", "p50(us)", "p99(us)", "algbw",
              "busbw", "vs_nccl", "#wrong");
  std::ofstream js;
  if (!jsonl.empty()) js.open(jsonl, std::ios::app);
  auto common = [&](const PointResult& p) {
    return nlohmann::json{{"bench", "dispatch_device"},
                          {"ranks", P},
                          {"layout", g.describe()},
                          {"gpu", prop.name},
                          {"tokens", o.tokens},
                          {"experts_per_rank", o.experts_per_rank},
                          {"hidden", p.c.hidden},
                          {"k", p.c.k},
                          {"dtype", coll::dtype_name(p.dtype)},
                          {"pattern", p.pattern},
                          {"algo", o.algo}};
  };
  for (const auto& p : points) {
    for (const auto& r : p.ops) {
      const TimeStats ts = time_stats(r.seconds, r.size_bytes, P);
      double ratio = 0;
      for (const auto& q : p.ops)
        if (!r.vs.empty() && q.op == r.vs && ts.p50_s > 0)
          ratio = percentile(q.seconds, 0.5) / ts.p50_s;
      char rs[32] = "-";
      if (!r.vs.empty()) std::snprintf(rs, sizeof rs, "%.3f", ratio);
      const std::string path = r.vs.empty() ? "-" : p.path;
      std::printf(
          " %6lld %2d %-5s %-8s %-14s %-7s %11.0f %9.1f %9.1f %9.1f %8.1f %8.1f %7s %7lld\n",
          static_cast<long long>(p.c.hidden), p.c.k, coll::dtype_name(p.dtype), p.pattern.c_str(),
          r.op.c_str(), path.c_str(), r.size_bytes, ts.avg_s * 1e6, ts.p50_s * 1e6, ts.p99_s * 1e6,
          ts.algbw_gbps, ts.busbw_gbps, rs, static_cast<long long>(r.wrong));
      if (js) {
        auto j = common(p);
        j.update(time_stats_json(ts, r.seconds.size()));
        j.update({{"kind", "op"},
                  {"op", r.op},
                  {"path", path},
                  {"size_bytes", r.size_bytes},
                  {"vs", r.vs},
                  {"ratio_vs_nccl", r.vs.empty() ? nlohmann::json() : nlohmann::json(ratio)},
                  {"wrong", r.wrong},
                  {"checked", r.checked}});
        js << j.dump() << "\n";
      }
    }
  }
  std::printf(
      "# kernels alone on rank 0 (device events, %d launches; bytes = each input read "
      "once + each output written once)\n",
      o.kernel_iters);
  std::printf("#%6s %2s %-5s %-8s %-18s %12s %9s %9s %7s\n", "hidden", "k", "dtype", "pattern",
              "kernel", "bytes", "p50(us)", "GB/s", "%copy");
  for (const auto& p : points)
    for (const auto& kr : p.kernels) {
      const double p50 = percentile(kr.seconds, 0.5);
      const double gbps = p50 > 0 ? kr.bytes / p50 / 1e9 : 0;
      std::printf(" %6lld %2d %-5s %-8s %-18s %12.0f %9.1f %9.1f %6.1f%%\n",
                  static_cast<long long>(p.c.hidden), p.c.k, coll::dtype_name(p.dtype),
                  p.pattern.c_str(), kr.kernel.c_str(), kr.bytes, p50 * 1e6, gbps,
                  100.0 * gbps / copy_gbps);
      if (js) {
        auto j = common(p);
        j.update({{"kind", "kernel"},
                  {"kernel", kr.kernel},
                  {"bytes", kr.bytes},
                  {"time_p50_us", p50 * 1e6},
                  {"bw_gbps", gbps},
                  {"copy_bw_gbps", copy_gbps},
                  {"pct_copy", 100.0 * gbps / copy_gbps}});
        js << j.dump() << "\n";
      }
    }
  std::printf("# #wrong total: %lld\n", static_cast<long long>(wrong));
  return wrong == 0 ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  return tamoe::mpi_main("tamoe-bench-dispatch", argc, argv, run, {77, false});
}
