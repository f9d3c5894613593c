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
#include "collectives/alltoallv.h"
#include "runtime/error.h"
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

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
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
  const int P = g.size(), me = g.rank();
  std::vector<int64_t> sc(P), rc(P);
  for (int j = 0; j < P; ++j) {
    sc[j] = C.at(me, j);
    rc[j] = C.at(j, me);
  }
  auto sd = packed_displs(sc.data(), P), rd = packed_displs(rc.data(), P);
  std::vector<uint32_t> send(std::max<int64_t>(1, sd[P - 1] + sc[P - 1])),
      recv(std::max<int64_t>(1, rd[P - 1] + rc[P - 1]));
  size_t first = out->size();
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
        for (int j = 0; j < P; ++j)
          for (int64_t k = 0; k < sc[j]; ++k) send[sd[j] + k] = bench::word(me, j, k, it_global);
        std::fill(recv.begin(), recv.end(), 0u);
        TAMOE_CHECK_MPI(MPI_Barrier(g.world()));
        double t0 = MPI_Wtime();
        if (algos[ai] == "auto")  // the whole call: count exchange, check, selection, data
          a2a.run(send.data(), sc.data(), sd.data(), recv.data(), rc.data(), rd.data(), 4);
        else
          a2a.run_named(algos[ai], C,
                        HostBuffers{send.data(), recv.data(), 4, sd.data(), rd.data()});
        double t = MPI_Wtime() - t0;
        int64_t wrong = 0;
        for (int i = 0; i < P; ++i)
          for (int64_t k = 0; k < rc[i]; ++k)
            wrong += recv[rd[i] + k] != bench::word(i, me, k, it_global);
        TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, g.world()));
        TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_INT64_T, MPI_SUM, g.world()));
        if (it >= warmup) {
          p.seconds.push_back(t);
          p.wrong += wrong;
        }
      }
    }
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (rank == 0) app.exit(e);
    return e.get_exit_code();
  }
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
      double avg = 0;
      for (double t : p.seconds) avg += t;
      avg /= std::max<size_t>(1, p.seconds.size());
      double p50 = percentile(p.seconds, 0.5), p99 = percentile(p.seconds, 0.99);
      double algbw = p50 > 0 ? p.size_bytes / p50 / 1e9 : 0;
      double busbw = algbw * (P - 1) / P;
      std::printf("  %-8s %12.0f %10.0f %-17s %10.1f %10.1f %10.1f %9.3f %9.3f %7lld\n",
                  p.pattern.c_str(), p.size_bytes, p.pair_bytes, p.algo.c_str(), avg * 1e6,
                  p50 * 1e6, p99 * 1e6, algbw, busbw, static_cast<long long>(p.wrong));
      if (js)
        js << nlohmann::json{{"bench", "a2a"},
                             {"mode", device ? "device" : "host"},
                             {"ranks", P},
                             {"nodes", g.nnodes()},
                             {"layout", g.describe()},
                             {"pattern", p.pattern},
                             {"size_bytes", p.size_bytes},
                             {"pair_bytes", p.pair_bytes},
                             {"algo", p.algo},
                             {"iters", p.seconds.size()},
                             {"time_avg_us", avg * 1e6},
                             {"time_p50_us", p50 * 1e6},
                             {"time_p99_us", p99 * 1e6},
                             {"algbw_gbps", algbw},
                             {"busbw_gbps", busbw},
                             {"wrong", p.wrong}}
                  .dump()
           << "\n";
    }
  }
  int64_t wrong = 0;
  for (const auto& p : points) wrong += p.wrong;
  return wrong == 0 ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 0;
  try {
    rc = run(argc, argv);
  } catch (const Error& e) {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    // Argument errors are the same everywhere: rank 0 speaks for all.
    bool same = e.status() == Status::invalid_argument || e.status() == Status::invalid_input;
    if (r == 0 || !same) std::fprintf(stderr, "tamoe-bench-a2a (rank %d): %s\n", r, e.what());
    rc = e.status() == Status::unavailable ? 3 : 1;
  }
  MPI_Finalize();
  return rc;
}
