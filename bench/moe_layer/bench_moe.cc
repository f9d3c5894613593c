// tamoe-bench-moe: the communication of one MoE layer (dispatch, combine, combine backward,
// dispatch backward) on S tokens per rank, with routing produced by a gate on random features,
// for five variants run interleaved in one job:
//   1 uniform      routing + flat MPI_Alltoallv      (the GShard / DeepSpeed baseline)
//   2 uniform      routing + hierarchical all-to-all
//   3 TA plan      routing + flat
//   4 TA plan      routing + hierarchical
//   5 TA plan      routing + hierarchical + plan-aware capacity (capacity_from_plan)
// "uniform" and "TA" are the same gate with a loss-free bias warmed up toward the uniform target
// or toward the plan's t_i(e) = X_{i,rank(e)} / E. Each variant reports the measured time
// (median over iterations of the slowest rank), the cost model's prediction for the traffic
// matrix its routing realized, the share of cross-node token-copies and the drops. Every
// iteration is verified against a host reference (#wrong; exit 2 if any).
//
//   mpirun -np 4 tamoe-bench-moe --virtual-nodes 2 --tokens 1024 --hidden 256 --k 2 --rho 1.5
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bench/common/bench_util.h"
#include "bench/moe_layer/moe_gate.h"
#include "bench/moe_layer/moe_plan.h"
#include "bench/moe_layer/moe_run.h"
#include "collectives/alltoallv.h"
#include "routing/losses.h"
#include "runtime/error.h"
#include "runtime/mpi_main.h"
#include "runtime/params.h"
#include "topology/cluster.h"
#include "topology/probe.h"

using namespace tamoe;
using namespace tamoe::bench::moe;

namespace {

struct Args {
  int64_t tokens = 1024, hidden = 256;
  int k = 2, experts_per_rank = 2, iters = 4, rounds = 3, warmup = 1, vnodes = -1;
  int bias_steps = 300, bias_batches = 4;
  double bias_rate = 5.0, capacity_factor = 1.25, rho = 1.5;
  std::string plan = "auto", plan_mode = "auto", model_file, save_model, jsonl, probe_max_bytes;
  std::vector<std::string> variants = {"1", "2", "3", "4", "5"};
  uint64_t seed = 2024;
};

const std::vector<VariantSpec>& all_variants() {
  static const std::vector<VariantSpec> v = {
      {"1", "uniform+flat", false, "mpi", false},   {"2", "uniform+hier", false, "hier", false},
      {"3", "ta+flat", true, "mpi", false},         {"4", "ta+hier", true, "hier", false},
      {"5", "ta+hier+plancap", true, "hier", true},
  };
  return v;
}

topo::CostModel get_model(const Args& a, const topo::Cluster& cluster, int rank) {
  if (!a.model_file.empty()) {
    topo::CostModel m = topo::CostModel::load(a.model_file);
    if (m.nranks() != cluster.size())
      fail(Status::mismatch, a.model_file, str("a cost model of ", cluster.size(), " ranks"),
           str(m.nranks(), " ranks"));
    return m;
  }
  topo::ProbeOptions po = topo::ProbeOptions::from_params();
  if (!a.probe_max_bytes.empty()) {
    po.max_bytes = parse_bytes(a.probe_max_bytes, "--probe-max-bytes");
    // as from_params does for TAMOE_PROBE_MAX_BYTES: the concurrent probes stay within it too
    po.concurrent_bytes = std::min<int64_t>(po.concurrent_bytes, po.max_bytes);
  }
  po.progress = false;
  double t0 = MPI_Wtime();
  topo::ProbeResult pr = topo::run_probe(cluster, po);
  topo::CostModel m = topo::build_cost_model(cluster, pr);
  if (rank == 0) {
    std::printf("# probe: %.1f s%s\n", MPI_Wtime() - t0,
                pr.budget_exhausted ? " (budget exhausted, sweeps cut)" : "");
    if (!a.save_model.empty()) m.save(a.save_model);
  }
  return m;
}

int run(int argc, char** argv) {
  int rank = 0, P = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  Args a;
  CLI::App app{"tamoe-bench-moe: one MoE layer's communication, uniform vs topology-aware"};
  app.add_option("--tokens", a.tokens, "S, tokens per rank")->capture_default_str();
  app.add_option("--hidden", a.hidden, "H, floats per token")->capture_default_str();
  app.add_option("--k", a.k, "top-k")->capture_default_str();
  app.add_option("--experts-per-rank", a.experts_per_rank, "E")->capture_default_str();
  app.add_option("--capacity-factor", a.capacity_factor, "cf of every capacity")
      ->capture_default_str();
  app.add_option("--rho", a.rho, "planner bound X_ij <= rho/P")->capture_default_str();
  app.add_option("--plan", a.plan, "auto (planner if built), planner, closed-form")
      ->capture_default_str();
  app.add_option("--plan-mode", a.plan_mode, "planner mode: auto, lp, sym, sinkhorn")
      ->capture_default_str();
  app.add_option("--cost-model", a.model_file, "load this cost model instead of probing");
  app.add_option("--save-model", a.save_model, "write the probed cost model here");
  app.add_option("--probe-max-bytes", a.probe_max_bytes, "largest probe message (e.g. 1M)");
  app.add_option("--iters", a.iters, "timed iterations per variant and round")
      ->capture_default_str();
  app.add_option("--rounds", a.rounds, "rounds, variants interleaved")->capture_default_str();
  app.add_option("--warmup", a.warmup, "untimed iterations per variant (first round)")
      ->capture_default_str();
  app.add_option("--bias-steps", a.bias_steps, "bias-controller warm-up steps")
      ->capture_default_str();
  app.add_option("--bias-rate", a.bias_rate, "proportional bias rate")->capture_default_str();
  app.add_option("--variants", a.variants, "subset of 1..5")->delimiter(',');
  app.add_option("--virtual-nodes", a.vnodes, "split each host into this many nodes");
  app.add_option("--seed", a.seed, "features and gate seed")->capture_default_str();
  app.add_option("--jsonl", a.jsonl, "append JSON lines (config + one per variant)");
  if (auto rc = bench::parse_cli(app, argc, argv, rank)) return *rc;
  TAMOE_CHECK_ARG(a.tokens >= 1 && a.hidden >= 1 && a.k >= 1 && a.experts_per_rank >= 1,
                  "--tokens/--hidden/--k/--experts-per-rank", "all >= 1",
                  str(a.tokens, "/", a.hidden, "/", a.k, "/", a.experts_per_rank));
  TAMOE_CHECK_ARG(a.iters >= 1 && a.rounds >= 1 && a.warmup >= 0, "--iters/--rounds/--warmup",
                  "iters, rounds >= 1 and warmup >= 0", str(a.iters, "/", a.rounds, "/", a.warmup));
  if (a.vnodes >= 0)
    Params::global().set("TAMOE_VIRTUAL_NODES", std::to_string(a.vnodes), ParamSource::api);

  topo::Cluster cluster = topo::Cluster::create(MPI_COMM_WORLD);
  coll::Groups g = coll::Groups::from_cluster(cluster);
  if (!g.uniform())
    fail(Status::invalid_argument, "tamoe-bench-moe", "the same number of ranks on every node",
         g.describe());
  const int n = g.nnodes(), m = g.ranks_per_node();
  topo::CostModel model = get_model(a, cluster, rank);
  std::vector<int> node_of(P);
  for (int r = 0; r < P; ++r) node_of[r] = g.node_of(r);
  TaPlan plan = make_ta_plan(model, node_of, n, m, a.experts_per_rank, a.tokens, a.k, a.hidden,
                             a.capacity_factor, a.rho, a.plan, a.plan_mode);

  std::vector<VariantSpec> variants;
  for (const auto& id : a.variants) {
    bool found = false;
    for (const auto& v : all_variants())
      if (v.id == id) variants.push_back(v), found = true;
    if (!found) fail(Status::invalid_argument, "--variants", "ids among 1..5", id);
  }
  BenchSetup s;
  s.tokens = a.tokens;
  s.hidden = a.hidden;
  s.k = a.k;
  s.experts_per_rank = a.experts_per_rank;
  s.capacity_factor = a.capacity_factor;
  s.iters = a.iters;
  s.rounds = a.rounds;
  s.warmup = a.warmup;
  s.bias_steps = a.bias_steps;
  s.bias_batches = a.bias_batches;
  s.bias_rate = a.bias_rate;
  s.seed = a.seed;
  double t0 = MPI_Wtime();
  std::vector<VariantResult> results = run_variants(g, model, plan, s, variants);
  double wall = MPI_Wtime() - t0;

  int64_t wrong = 0;
  for (const auto& r : results) wrong += r.wrong;
  if (rank == 0) {
    print_report(g, model, plan, s, results, wall);
    if (!a.jsonl.empty()) {
      std::ofstream js(a.jsonl, std::ios::app);
      write_jsonl(js, g, model, plan, s, results);
    }
  }
  return wrong == 0 ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  return tamoe::mpi_main("tamoe-bench-moe", argc, argv, run, {3, true});
}
