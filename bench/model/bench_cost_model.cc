// tamoe-bench-model: how well the probed cost model predicts MPI_Alltoallv on this job.
// Probes (or loads a model), then for each pattern and size measures the median alltoallv time
// and prints it next to the prediction. JSON Lines with --jsonl.
//
//   mpirun -np 4 tamoe-bench-model --virtual-nodes 2
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/common/bench_util.h"
#include "runtime/error.h"
#include "runtime/mpi_main.h"
#include "runtime/params.h"
#include "topology/cluster.h"
#include "topology/probe.h"
#include "topology/traffic_patterns.h"

using namespace tamoe;
using namespace tamoe::topo;

namespace {
int run(int argc, char** argv) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  CLI::App app{"tamoe-bench-model: predicted vs measured MPI_Alltoallv time"};
  int vnodes = -1, iters = 30, repeats = 3;
  std::string model_file, jsonl;
  std::vector<std::string> sizes = {"16K", "64K", "256K", "1M", "4M"};
  std::vector<std::string> patterns = {"uniform", "ladder", "zipf"};
  app.add_option("--virtual-nodes", vnodes, "split each host into this many nodes");
  app.add_option("--cost-model", model_file, "use this cost model instead of probing");
  app.add_option("--sizes", sizes, "bytes per rank pair (uniform share)")->capture_default_str();
  app.add_option("--patterns", patterns, "traffic patterns: uniform, ladder, zipf")
      ->capture_default_str();
  app.add_option("--iters", iters, "alltoallv repetitions per measurement (median)")
      ->capture_default_str();
  app.add_option("--repeats", repeats, "measurements per point, interleaved (median of medians)")
      ->capture_default_str();
  app.add_option("--jsonl", jsonl, "append one JSON line per point to this file");
  if (auto rc = bench::parse_cli(app, argc, argv, rank)) return *rc;
  if (vnodes >= 0)
    Params::global().set("TAMOE_VIRTUAL_NODES", std::to_string(vnodes), ParamSource::api);
  Cluster cluster = Cluster::create(MPI_COMM_WORLD);
  CostModel model;
  if (!model_file.empty()) {
    model = CostModel::load(model_file);
    if (model.nranks() != cluster.size())
      fail(Status::mismatch, model_file + ": nranks", str(cluster.size()), str(model.nranks()));
  } else {
    ProbeOptions o = ProbeOptions::from_params();
    o.progress = false;
    model = build_cost_model(cluster, run_probe(cluster, o));
  }
  if (rank == 0) {
    std::printf("# tamoe-bench-model: %s, model source: %s\n", cluster.describe().c_str(),
                model.source().c_str());
    std::printf("%-9s %10s %13s %13s %9s %12s\n", "pattern", "bytes/pair", "predicted_ms",
                "measured_ms", "error", "bottleneck");
  }
  std::ofstream out;
  if (rank == 0 && !jsonl.empty()) out.open(jsonl, std::ios::app);
  double worst = 0;
  for (const auto& sz : sizes) {
    double bytes = static_cast<double>(parse_bytes(sz, "--sizes"));
    for (const auto& pat : patterns) {
      std::vector<double> D = traffic_pattern(model, pat, bytes);
      Prediction p = model.predict(D);
      std::vector<double> ms;
      for (int k = 0; k < repeats; ++k) ms.push_back(measure_alltoallv(cluster.world(), D, iters));
      std::sort(ms.begin(), ms.end());
      double meas = ms[ms.size() / 2];
      double err = (p.seconds - meas) / meas;
      worst = std::max(worst, std::fabs(err));
      std::string bn = p.bottleneck_link >= 0 ? model.link(p.bottleneck_link).name : "self copy";
      if (rank == 0) {
        std::printf("%-9s %10.0f %13.4f %13.4f %+8.1f%% %12s\n", pat.c_str(), bytes,
                    p.seconds * 1e3, meas * 1e3, 100 * err, bn.c_str());
        if (out)
          out << nlohmann::json{{"bench", "model"},          {"ranks", cluster.size()},
                                {"nodes", cluster.nnodes()}, {"pattern", pat},
                                {"bytes_per_pair", bytes},   {"predicted_s", p.seconds},
                                {"measured_s", meas},        {"rel_error", err},
                                {"bottleneck", bn}}
                     .dump()
              << "\n";
      }
    }
  }
  if (rank == 0) std::printf("# worst |error| %.1f%%\n", 100 * worst);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  return tamoe::mpi_main("tamoe-bench-model", argc, argv, run);
}
