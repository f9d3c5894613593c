// tamoe-probe: discover the node, probe the links of the job under mpirun, fit the cost model,
// write it as JSON and check its prediction of MPI_Alltoallv against a measurement.
//
//   mpirun -np 4 tamoe-probe --virtual-nodes 2 --out cost_model.json
//   tamoe-probe --topology cost_model.json            (load instead of probing)
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/mpi_main.h"
#include "runtime/params.h"
#include "topology/cluster.h"
#include "topology/cluster_desc.h"
#include "topology/cost_model.h"
#include "topology/node_topology.h"
#include "topology/probe.h"
#include "topology/traffic_patterns.h"

using namespace tamoe;
using namespace tamoe::topo;

namespace {

struct Args {
  std::string out = "tamoe_cost_model.json";
  std::string topology;
  std::string cluster_file;
  std::string dump;
  std::string json_out;
  int virtual_nodes = -1;
  double budget_s = -1;
  int iters = -1;
  int max_pairs = -1;
  std::string max_bytes;
  std::string check_bytes = "256K";
  int check_iters = 20;
  std::string transport = "mpi";
  bool print_params = false;
  bool quiet = false;
};

void print_classes(const CostModel& m) {
  std::printf("\n%-20s %6s %10s %12s %9s\n", "link class", "pairs", "lat_us", "bw_GB/s", "fit_err");
  for (const auto& c : m.probe_classes())
    std::printf("%-20s %6d %10.2f %12.3f %8.1f%%\n", c.name.c_str(), c.pairs, c.lat_us, c.bw_gbps,
                100 * c.fit_rel_err);
}

void print_model(const CostModel& m) {
  std::printf("\ncost model: %d ranks, %d nodes, %d vertices, %d links (source: %s)\n", m.nranks(),
              m.nnodes(), m.nvertices(), m.nlinks(), m.source().c_str());
  std::printf("  self copy %.3f GB/s, latency overlap %.3f\n", m.self_bw_gbps(),
              m.latency_overlap());
  // Links grouped by (from kind -> to kind) so large jobs print a short table.
  std::map<std::string, std::pair<int, std::pair<double, double>>> groups;
  for (const auto& l : m.links()) {
    std::string k = m.vertex(l.from).kind + " -> " + m.vertex(l.to).kind;
    auto& g = groups[k];
    if (g.first == 0) g.second = {l.bw_gbps, l.bw_gbps};
    g.first++;
    g.second.first = std::min(g.second.first, l.bw_gbps);
    g.second.second = std::max(g.second.second, l.bw_gbps);
  }
  std::printf("  %-22s %6s %14s\n", "links", "count", "bw_GB/s");
  for (const auto& [k, g] : groups) {
    if (g.second.first == g.second.second)
      std::printf("  %-22s %6d %14.3f\n", k.c_str(), g.first, g.second.first);
    else
      std::printf("  %-22s %6d %6.3f..%.3f\n", k.c_str(), g.first, g.second.first, g.second.second);
  }
}

int run(int argc, char** argv) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Args a;
  CLI::App app{
      "tamoe-probe: discover the node and probe the links of this MPI job, fit the cost model"};
  app.add_option("-o,--out", a.out, "write the cost model JSON here")->capture_default_str();
  app.add_option("--topology", a.topology,
                 "load this cost model JSON instead of probing (TAMOE_COST_MODEL_FILE)");
  app.add_option(
      "--cluster", a.cluster_file,
      "build the model from this cluster description JSON instead of probing (TAMOE_CLUSTER_FILE)");
  app.add_option("--dump", a.dump,
                 "write what was discovered (node topology, cluster layout) as JSON to this file");
  app.add_option("--json", a.json_out,
                 "write a machine-readable summary (probe classes, check) to this file");
  app.add_option("--virtual-nodes", a.virtual_nodes,
                 "split each host into this many nodes (TAMOE_VIRTUAL_NODES)");
  app.add_option("--budget", a.budget_s,
                 "time budget of the probe in seconds (TAMOE_PROBE_BUDGET_S)");
  app.add_option("--iters", a.iters, "timed repetitions per point (TAMOE_PROBE_ITERS)");
  app.add_option("--max-pairs", a.max_pairs,
                 "pairs sampled per link class (TAMOE_PROBE_MAX_PAIRS)");
  app.add_option("--max-bytes", a.max_bytes,
                 "largest ping-pong message, e.g. 4M (TAMOE_PROBE_MAX_BYTES)");
  app.add_option("--check-bytes", a.check_bytes,
                 "bytes per rank pair of the prediction check (0: skip)")
      ->capture_default_str();
  app.add_option("--check-iters", a.check_iters, "repetitions of the prediction check")
      ->capture_default_str();
  app.add_option("--transport", a.transport,
                 "probe through mpi (host memory) or nccl (device memory)")
      ->check(CLI::IsMember({"mpi", "nccl"}))
      ->capture_default_str();
  app.add_flag("--print-params", a.print_params,
               "print every TAMOE_* parameter with its source and exit");
  app.add_flag("-q,--quiet", a.quiet, "no progress lines");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = 0;
    if (rank == 0) rc = app.exit(e);
    return e.get_exit_code() == 0 ? 0 : (rc ? rc : 2);
  }
  Params& params = Params::global();
  if (a.virtual_nodes >= 0)
    params.set("TAMOE_VIRTUAL_NODES", std::to_string(a.virtual_nodes), ParamSource::api,
               "--virtual-nodes");
  if (a.budget_s > 0)
    params.set("TAMOE_PROBE_BUDGET_S", str(a.budget_s), ParamSource::api, "--budget");
  if (a.iters > 0)
    params.set("TAMOE_PROBE_ITERS", std::to_string(a.iters), ParamSource::api, "--iters");
  if (a.max_pairs > 0)
    params.set("TAMOE_PROBE_MAX_PAIRS", std::to_string(a.max_pairs), ParamSource::api,
               "--max-pairs");
  if (!a.max_bytes.empty())
    params.set("TAMOE_PROBE_MAX_BYTES", std::to_string(parse_bytes(a.max_bytes, "--max-bytes")),
               ParamSource::api, "--max-bytes");
  if (!a.topology.empty())
    params.set("TAMOE_COST_MODEL_FILE", a.topology, ParamSource::api, "--topology");
  if (a.print_params) {
    if (rank == 0) params.print(std::cout);
    return 0;
  }

  Cluster cluster = Cluster::create(MPI_COMM_WORLD);
  if (rank == 0) std::printf("tamoe-probe: %s\n", cluster.describe().c_str());

  nlohmann::json dump;
  dump["cluster"] = {{"ranks", cluster.size()},
                     {"nodes", cluster.nnodes()},
                     {"hosts", cluster.nhosts()},
                     {"virtual_nodes_per_host", cluster.virtual_nodes_per_host()}};
  if (rank == 0) {
    // The node of rank 0 (TAMOE_TOPO_FILE / TAMOE_TOPO_SYNTHETIC replay a captured one).
    NodeTopology node = discover_node();
    std::printf("%s", node.describe().c_str());
    dump["node_topology"] = node.to_json();
  }

  CostModel model;
  ProbeResult probe;
  std::string model_file = params.get_string("TAMOE_COST_MODEL_FILE");
  std::string desc_file = params.get_string("TAMOE_CLUSTER_FILE");
  if (model_file.empty() && !desc_file.empty()) {
    model = load_cluster_description(desc_file, cluster.size());
    model_file = desc_file;
    if (rank == 0) std::printf("cost model from cluster description %s\n", desc_file.c_str());
  } else if (!model_file.empty()) {
    model = CostModel::load(model_file);
    if (model.nranks() != cluster.size())
      fail(Status::mismatch, model_file + ": nranks",
           str(cluster.size(), " (the ranks of this job)"), str(model.nranks()));
    if (rank == 0) std::printf("loaded cost model from %s\n", model_file.c_str());
  } else {
    ProbeOptions opts = ProbeOptions::from_params();
    opts.progress = !a.quiet;
    int64_t per_peer = std::max(opts.max_bytes, opts.concurrent_bytes);
    auto transport =
        a.transport == "nccl"
            ? make_nccl_transport(cluster, per_peer * std::max(1, cluster.size() - 1))
            : make_mpi_transport(cluster.world(), per_peer * std::max(1, cluster.size() - 1));
    probe = run_probe(cluster, opts, *transport);
    model = build_cost_model(cluster, probe);
    if (rank == 0) {
      model.save(a.out);
      std::printf("probe took %.1f s%s; wrote %s\n", probe.elapsed_s,
                  probe.budget_exhausted ? " (budget reached: fewer pairs sampled)" : "",
                  a.out.c_str());
    }
  }
  if (rank == 0) {
    print_classes(model);
    print_model(model);
  }

  nlohmann::json checks = nlohmann::json::array();
  int64_t check_bytes = parse_bytes(a.check_bytes, "--check-bytes");
  if (check_bytes > 0) {
    if (rank == 0)
      std::printf("\n%-10s %12s %14s %14s %9s\n", "pattern", "bytes/pair", "predicted_ms",
                  "measured_ms", "error");
    for (const std::string name : {"uniform", "ladder"}) {
      std::vector<double> D = traffic_pattern(model, name, static_cast<double>(check_bytes));
      double pred = model.predict_seconds(D);
      double meas = measure_alltoallv(cluster.world(), D, a.check_iters);
      double err = (pred - meas) / meas;
      if (rank == 0)
        std::printf("%-10s %12lld %14.3f %14.3f %+8.1f%%\n", name.c_str(),
                    static_cast<long long>(check_bytes), pred * 1e3, meas * 1e3, 100 * err);
      checks.push_back({{"pattern", name},
                        {"bytes_per_pair", check_bytes},
                        {"predicted_s", pred},
                        {"measured_s", meas},
                        {"rel_error", err}});
    }
  }
  if (rank == 0 && !a.json_out.empty()) {
    nlohmann::json j = {{"cluster", dump["cluster"]},
                        {"cost_model_file", model_file.empty() ? a.out : model_file},
                        {"probe_elapsed_s", probe.elapsed_s},
                        {"checks", checks}};
    j["classes"] = model.to_json().value("probe_classes", nlohmann::json::array());
    std::ofstream(a.json_out) << j.dump(1) << "\n";
  }
  if (rank == 0 && !a.dump.empty()) {
    dump["cost_model"] = model.to_json();
    std::ofstream(a.dump) << dump.dump(1) << "\n";
    std::printf("dumped discovery to %s\n", a.dump.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tamoe::mpi_main("tamoe-probe", argc, argv, run);
}
