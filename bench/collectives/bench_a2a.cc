// tamoe-bench-a2a: all-to-all(v) algorithms side by side, in the style of nccl-tests.
//
// For each traffic pattern (uniform, ladder, zipf, or a matrix file) and size (mean bytes per
// rank pair), every algorithm runs `iters` timed iterations, interleaved over `repeats` rounds
// so background load hits all alike. Each iteration's data is different and verified (#wrong).
// Columns: size = largest per-rank send volume, time avg/p50/p99 (max over ranks),
// algbw = size / time, busbw = algbw * (P-1)/P.
//
//   mpirun -np 8 tamoe-bench-a2a --virtual-nodes 2 --sizes 1K,4K,256K,1M --jsonl a2a.jsonl
//   mpirun -np 8 tamoe-bench-a2a --matrix traffic.txt      (P lines of P relative weights)
//   mpirun -np 2 tamoe-bench-a2a --device                  (NCCL, one GPU per rank)
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/collectives/bench_a2a.h"
#include "bench/common/bench_util.h"
#include "collectives/alltoallv.h"
#include "runtime/error.h"
#include "runtime/mpi_main.h"
#include "runtime/params.h"
#include "topology/cluster.h"
#include "topology/traffic_patterns.h"

using namespace tamoe;
using namespace tamoe::coll;
using tamoe::bench::Point;

namespace {

// P x P relative weights from a text file ('#' starts a comment).
std::vector<double> read_matrix(const std::string& path, int P) {
  std::ifstream in(path);
  if (!in) fail(Status::invalid_input, path, "a readable traffic matrix file", "cannot open it");
  std::vector<double> v;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    line = line.substr(0, line.find('#'));
    std::istringstream ls(line);
    std::string tok;
    while (ls >> tok) {
      double x = parse_real(tok, str(path, ":", lineno));
      if (x < 0 || !std::isfinite(x))
        fail(Status::invalid_input, str(path, ":", lineno), "a finite weight >= 0", tok);
      v.push_back(x);
    }
  }
  if (static_cast<int64_t>(v.size()) != static_cast<int64_t>(P) * P)
    fail(Status::invalid_input, path, str(P, " x ", P, " = ", P * P, " numbers for ", P, " ranks"),
         str(v.size(), " numbers"));
  return v;
}

// Counts in 4-byte words for a byte matrix.
CountMatrix word_counts(const std::vector<double>& bytes, int P) {
  CountMatrix m;
  m.P = P;
  m.c.resize(bytes.size());
  for (size_t i = 0; i < bytes.size(); ++i)
    m.c[i] = static_cast<int64_t>(std::llround(bytes[i] / 4));
  return m;
}

void run_host(AllToAll& a2a, const Groups& g, const CountMatrix& C, const std::string& pattern,
              const std::vector<std::string>& algos, int warmup, int iters, int repeats,
              std::vector<Point>* out) {
  const bench::RankWords w(C, g.rank());
  std::vector<uint32_t> send(w.send_words()), recv(w.recv_words());
  auto one = [&](size_t ai, int it) {
    w.fill(send.data(), it);
    std::fill(recv.begin(), recv.end(), 0u);
    TAMOE_CHECK_MPI(MPI_Barrier(g.world()));
    double t0 = MPI_Wtime();
    if (algos[ai] == "auto")  // the whole call: count exchange, check, selection, data
      a2a.run(send.data(), w.sc.data(), w.sd.data(), recv.data(), w.rc.data(), w.rd.data(), 4);
    else
      a2a.run_named(algos[ai], C,
                    HostBuffers{send.data(), recv.data(), 4, w.sd.data(), w.rd.data()});
    double t = MPI_Wtime() - t0;
    return bench::Sample{t, w.count_wrong(recv.data(), it)};
  };
  bench::run_rounds(g, pattern, algos, warmup, iters, repeats, one, out);
}

int run(int argc, char** argv) {
  int rank = 0, P = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  CLI::App app{"tamoe-bench-a2a: all-to-all(v) algorithms, nccl-tests style"};
  int vnodes = -1, iters = 20, warmup = 3, repeats = 3;
  bool device = false;
  std::string model_file, jsonl, matrix;
  std::vector<std::string> sizes = {"1K", "4K", "64K", "1M"};
  std::vector<std::string> patterns = {"uniform", "ladder", "zipf"};
  std::vector<std::string> algos;
  app.add_option("--virtual-nodes", vnodes, "split each host into this many nodes");
  app.add_option("--sizes", sizes, "mean bytes per rank pair")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--patterns", patterns, "uniform, ladder, zipf")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--matrix", matrix, "traffic matrix file: P lines of P relative weights");
  app.add_option("--algos", algos,
                 "host: mpi (MPI_Alltoallv), pairwise, hier, hier_inter_first, auto; device: "
                 "nccl, hier, hier_inter_first, nccl_alltoall (default: all)")
      ->delimiter(',');
  app.add_option("--cost-model", model_file, "cost model JSON for auto selection");
  app.add_option("--iters", iters, "timed iterations per round")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed iterations per round")->capture_default_str();
  app.add_option("--repeats", repeats, "rounds, algorithms interleaved")->capture_default_str();
  app.add_flag("--device", device, "device buffers through NCCL (one GPU per rank)");
  app.add_option("--jsonl", jsonl, "append one JSON line per point to this file");
  if (auto rc = bench::parse_cli(app, argc, argv, rank)) return *rc;
  if (vnodes >= 0)
    Params::global().set("TAMOE_VIRTUAL_NODES", std::to_string(vnodes), ParamSource::api);
  if (algos.empty())
    algos = device
                ? std::vector<std::string>{"nccl", "hier", "hier_inter_first", "nccl_alltoall"}
                : std::vector<std::string>{"mpi", "pairwise", "hier", "hier_inter_first", "auto"};
  topo::Cluster cluster = topo::Cluster::create(MPI_COMM_WORLD);
  Groups g = Groups::from_cluster(cluster);
  if (!g.uniform()) {
    std::vector<std::string> keep;
    for (const auto& a : algos)
      if (a.rfind("hier", 0) != 0) keep.push_back(a);
    if (rank == 0 && keep.size() != algos.size())
      std::printf("# %s: hierarchical algorithms skipped (uneven nodes)\n", g.describe().c_str());
    algos = keep;
  }
  topo::CostModel model;
  const topo::CostModel* model_ptr = nullptr;
  if (!model_file.empty()) {
    model = topo::CostModel::load(model_file);
    model_ptr = &model;
  }
  AllToAll a2a(g, AllToAllOptions{model_ptr, ""});
  // Node structure only, for the ladder pattern.
  topo::CostModel shape(P);
  for (int r = 0; r < P; ++r) shape.set_location(r, g.node_of(r));
  if (!matrix.empty()) patterns = {"file"};

  std::vector<Point> points;
  for (const auto& pattern : patterns)
    for (const auto& s : sizes) {
      double pair = static_cast<double>(parse_bytes(s, "--sizes"));
      std::vector<double> bytes;
      if (pattern == "file") {
        bytes = read_matrix(matrix, P);
        double sum = 0;
        for (double v : bytes) sum += v;
        for (double& v : bytes) v = sum > 0 ? v * pair * P * P / sum : 0;
      } else {
        bytes = topo::traffic_pattern(shape, pattern, pair);
      }
      CountMatrix C = word_counts(bytes, P);
      size_t first = points.size();
      if (device)
        bench::run_device(g, C, pattern, algos, warmup, iters, repeats, &points);
      else
        run_host(a2a, g, C, pattern, algos, warmup, iters, repeats, &points);
      double most = 0;
      for (int i = 0; i < P; ++i) {
        double row = 0;
        for (int j = 0; j < P; ++j) row += static_cast<double>(C.at(i, j)) * 4;
        most = std::max(most, row);
      }
      for (size_t i = first; i < points.size(); ++i) {
        points[i].size_bytes = most;
        points[i].pair_bytes = C.mean_pair_bytes(4);
      }
    }

  if (rank == 0) {
    std::printf("# tamoe-bench-a2a: %s, %s, %d iters x %d rounds (+%d warmup)\n",
                g.describe().c_str(), device ? "device (NCCL)" : "host (MPI)", iters, repeats,
                warmup);
    std::printf("# %-8s %12s %10s %-17s %10s %10s %10s %9s %9s %7s\n", "pattern", "size(B)",
                "pair(B)", "algorithm", "avg(us)", "p50(us)", "p99(us)", "algbw", "busbw",
                "#wrong");
    std::ofstream js;
    if (!jsonl.empty()) js.open(jsonl, std::ios::app);
    for (const auto& p : points) {
      const bench::TimeStats ts = bench::time_stats(p.seconds, p.size_bytes, P);
      std::printf("  %-8s %12.0f %10.0f %-17s %10.1f %10.1f %10.1f %9.3f %9.3f %7lld\n",
                  p.pattern.c_str(), p.size_bytes, p.pair_bytes, p.algo.c_str(), ts.avg_s * 1e6,
                  ts.p50_s * 1e6, ts.p99_s * 1e6, ts.algbw_gbps, ts.busbw_gbps,
                  static_cast<long long>(p.wrong));
      if (js) {
        nlohmann::json j{{"bench", "a2a"},
                         {"mode", device ? "device" : "host"},
                         {"ranks", P},
                         {"nodes", g.nnodes()},
                         {"layout", g.describe()},
                         {"pattern", p.pattern},
                         {"size_bytes", p.size_bytes},
                         {"pair_bytes", p.pair_bytes},
                         {"algo", p.algo},
                         {"wrong", p.wrong}};
        j.update(bench::time_stats_json(ts, p.seconds.size()));
        js << j.dump() << "\n";
      }
    }
  }
  int64_t wrong = 0;
  for (const auto& p : points) wrong += p.wrong;
  return wrong == 0 ? 0 : 2;
}

}  // namespace

namespace tamoe::bench {

RankWords::RankWords(const coll::CountMatrix& C, int rank) : P(C.P), me(rank), sc(P), rc(P) {
  for (int j = 0; j < P; ++j) {
    sc[j] = C.at(me, j);
    rc[j] = C.at(j, me);
  }
  sd = coll::packed_displs(sc.data(), P);
  rd = coll::packed_displs(rc.data(), P);
}

int64_t RankWords::send_words() const {
  return std::max<int64_t>(1, sd[P - 1] + sc[P - 1]);
}

int64_t RankWords::recv_words() const {
  return std::max<int64_t>(1, rd[P - 1] + rc[P - 1]);
}

void RankWords::fill(uint32_t* send, int it) const {
  for (int j = 0; j < P; ++j)
    for (int64_t k = 0; k < sc[j]; ++k) send[sd[j] + k] = word(me, j, k, it);
}

int64_t RankWords::count_wrong(const uint32_t* recv, int it) const {
  int64_t wrong = 0;
  for (int i = 0; i < P; ++i)
    for (int64_t k = 0; k < rc[i]; ++k) wrong += recv[rd[i] + k] != word(i, me, k, it);
  return wrong;
}

void run_rounds(const coll::Groups& g, const std::string& pattern,
                const std::vector<std::string>& algos, int warmup, int iters, int repeats,
                const std::function<Sample(size_t algo, int it)>& run_one,
                std::vector<Point>* out) {
  const size_t first = out->size();
  for (const auto& a : algos) {
    Point p;
    p.pattern = pattern;
    p.algo = a;
    out->push_back(p);
  }
  int it_global = 0;
  for (int rep = 0; rep < repeats; ++rep)
    for (size_t ai = 0; ai < algos.size(); ++ai) {
      Point& p = (*out)[first + ai];
      for (int it = 0; it < warmup + iters; ++it, ++it_global) {
        Sample s = run_one(ai, it_global);
        TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &s.seconds, 1, MPI_DOUBLE, MPI_MAX, g.world()));
        TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &s.wrong, 1, MPI_INT64_T, MPI_SUM, g.world()));
        if (it >= warmup) {
          p.seconds.push_back(s.seconds);
          p.wrong += s.wrong;
        }
      }
    }
}

}  // namespace tamoe::bench

int main(int argc, char** argv) {
  return tamoe::mpi_main("tamoe-bench-a2a", argc, argv, run, {3, false});
}
