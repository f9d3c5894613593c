// tamoe-bench-plan: how long planning takes against the rank count, per mode, on synthetic fat
// trees (8 ranks per node, NIC per rank, 8 nodes per leaf, 2:1 oversubscription). Prints a table
// and one JSON line per point (--jsonl FILE, or stdout with --json).
//
// Columns: solve_s is the optimizer itself (LP build + CLP, reduced LP, or Sinkhorn sweeps);
// plan_s is make_plan end to end (validation, solve, predictions through the cost model);
// build_s is building the synthetic cost model (not needed by the closed-form sym path).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "planner/clp_lp.h"
#include "planner/lp_planner.h"
#include "planner/planner.h"
#include "planner/sinkhorn.h"
#include "planner/symmetric.h"
#include "runtime/error.h"
#include "topology/synthetic.h"

using namespace tamoe;
using clk = std::chrono::steady_clock;

namespace {
double since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

topo::SyntheticCluster cluster(int P) {
  topo::SyntheticCluster c;
  c.ranks_per_node = std::min(P, 8);
  c.nodes = P / c.ranks_per_node;
  c.nodes_per_leaf = std::min(c.nodes, 8);
  c.oversubscription = c.nodes > c.nodes_per_leaf ? 2 : 1;
  return c;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tamoe-bench-plan: planning time vs rank count per planner mode"};
  int max_ranks = 16384, max_lp = 256, max_sinkhorn = 1024, max_dense_sym = 1024;
  double rho = 2, eps = 0.1;
  std::string jsonl;
  bool json_stdout = false;
  app.add_option("--max-ranks", max_ranks, "largest rank count (powers of 2 from 8)")
      ->capture_default_str();
  app.add_option("--max-lp", max_lp, "largest rank count for the exact LP")->capture_default_str();
  app.add_option("--max-sinkhorn", max_sinkhorn, "largest rank count for Sinkhorn")
      ->capture_default_str();
  app.add_option("--max-dense-sym", max_dense_sym,
                 "largest rank count for sym from a built cost model (route counting)")
      ->capture_default_str();
  app.add_option("--rho", rho, "bound")->capture_default_str();
  app.add_option("--eps", eps, "Sinkhorn temperature")->capture_default_str();
  app.add_option("--jsonl", jsonl, "append JSON lines here");
  app.add_flag("--json", json_stdout, "JSON lines on stdout instead of the table");
  CLI11_PARSE(app, argc, argv);

  std::ofstream jf;
  if (!jsonl.empty()) jf.open(jsonl, std::ios::app);
  plan::MoeShape shape;
  const double V = shape.volume_bytes();
  if (!json_stdout)
    std::printf("%-10s %7s %10s %10s %10s %8s %10s  %s\n", "mode", "ranks", "solve_s", "plan_s",
                "build_s", "iters", "speedup", "cluster");
  auto emit = [&](const char* mode, int P, double solve_s, double plan_s, double build_s, int iters,
                  double speedup, const topo::SyntheticCluster& c) {
    nlohmann::json j = {{"bench", "plan"},     {"mode", mode},
                        {"ranks", P},          {"solve_s", solve_s},
                        {"plan_s", plan_s},    {"build_s", build_s},
                        {"iterations", iters}, {"speedup", speedup},
                        {"rho", rho},          {"cluster", topo::to_string(c)}};
    if (json_stdout)
      std::printf("%s\n", j.dump().c_str());
    else
      std::printf("%-10s %7d %10.4g %10.4g %10.4g %8d %10.4f  nodes=%d,rpn=%d,leaf=%d,oversub=%g\n",
                  mode, P, solve_s, plan_s, build_s, iters, speedup, c.nodes, c.ranks_per_node,
                  c.nodes_per_leaf, c.oversubscription);
    if (jf) jf << j.dump() << "\n";
    std::fflush(stdout);
  };
  try {
    for (int P = 8; P <= max_ranks; P *= 2) {
      topo::SyntheticCluster c = cluster(P);
      if (plan::have_clp()) {
        // sym from closed-form counts: the path that scales.
        auto t0 = clk::now();
        plan::ReducedProblem r = plan::reduce(c);
        plan::ReducedSolution s = plan::solve_reduced(r, V, rho);
        double solve_s = since(t0);
        plan::PlanOptions o;
        o.mode = "sym";
        o.rho = rho;
        t0 = clk::now();
        plan::Plan p = plan::make_plan(c, shape, o);
        emit("sym", P, solve_s, since(t0), 0, s.iterations, p.metrics.speedup, c);
      }
      std::optional<topo::CostModel> cm;
      double build_s = 0;
      if (P <= std::max({max_lp, max_sinkhorn, max_dense_sym})) {
        auto t0 = clk::now();
        cm = topo::make_synthetic(c);
        build_s = since(t0);
      }
      if (plan::have_clp() && P <= max_dense_sym) {
        auto t0 = clk::now();
        plan::ReducedSolution s = plan::solve_reduced(plan::reduce(*cm, V), V, rho);
        double solve_s = since(t0);
        plan::PlanOptions o;
        o.mode = "sym";
        o.rho = rho;
        t0 = clk::now();
        plan::Plan p = plan::make_plan(*cm, shape, o);
        emit("sym-model", P, solve_s, since(t0), build_s, s.iterations, p.metrics.speedup, c);
      }
      if (plan::have_clp() && P <= max_lp) {
        plan::LpPlanResult r = plan::solve_dispatch_lp(*cm, V, rho);
        plan::PlanOptions o;
        o.mode = "lp";
        o.rho = rho;
        auto t0 = clk::now();
        plan::Plan p = plan::make_plan(*cm, shape, o);
        emit("lp", P, r.seconds, since(t0), build_s, r.iterations, p.metrics.speedup, c);
      }
      if (P <= max_sinkhorn) {
        auto t0 = clk::now();
        std::vector<double> cost = plan::route_cost_matrix(*cm, V);
        plan::SinkhornOptions so;
        so.eps = eps;
        so.rho = rho;
        plan::SinkhornResult s = plan::bounded_sinkhorn(cost, P, so);
        double solve_s = since(t0);
        plan::PlanOptions o;
        o.mode = "sinkhorn";
        o.rho = rho;
        o.eps = eps;
        t0 = clk::now();
        plan::Plan p = plan::make_plan(*cm, shape, o);
        emit("sinkhorn", P, solve_s, since(t0), build_s, s.iterations, p.metrics.speedup, c);
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "tamoe-bench-plan: %s\n", e.what());
    return 2;
  }
  return 0;
}
