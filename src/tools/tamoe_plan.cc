// tamoe-plan: the dispatch planner from the command line. Reads a cost model (from tamoe-probe or
// a description) or builds a synthetic cluster, plans the MoE dispatch, writes the plan JSON and
// prints what it buys: shares per level, the ladder profile, predicted times and the speedup.
//
//   tamoe-plan --synthetic nodes=2,rpn=8,intra=450,nic=50 --rho 2 --out plan.json
//   tamoe-plan --cost-model probed.json --mode lp --svg x.svg --tradeoff-svg curve.svg
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "planner/planner.h"
#include "planner/svg.h"
#include "runtime/error.h"
#include "topology/synthetic.h"

using namespace tamoe;

namespace {

nlohmann::json summary_json(const plan::Plan& p) {
  nlohmann::json j = p.to_json();
  j.erase("x");
  j.erase("capacity");
  j.erase("node");
  j.erase("leaf");
  nlohmann::json pairs;
  for (int l = 0; l < plan::kLevels; ++l) pairs[plan::level_name(l)] = p.metrics.pairs_per_row[l];
  j["pairs_per_rank"] = pairs;
  return j;
}

void print_table(const plan::Plan& p) {
  const plan::Metrics& m = p.metrics;
  std::printf("tamoe-plan: %d ranks, %d experts per rank, mode %s, rho %g%s\n", p.nranks,
              p.shape.experts_per_rank, plan::mode_name(p.mode), p.rho,
              p.eps > 0 ? str(", eps ", p.eps).c_str() : "");
  std::printf("  cost model: %s\n  solver: %s, %.3f s\n", p.source.c_str(), p.solver.c_str(),
              p.solve_seconds);
  std::printf("  volume per rank V = S*k*H*bytes = %lld*%d*%lld*%d = %.3f MB\n",
              static_cast<long long>(p.shape.tokens_per_rank), p.shape.top_k,
              static_cast<long long>(p.shape.hidden), p.shape.bytes_per_element,
              p.shape.volume_bytes() / 1e6);
  std::printf("\n  %-7s %12s %14s %10s %12s %12s\n", "level", "dests/rank", "X per dest", "P*X",
              "share plan", "share unif");
  for (int l = 0; l < plan::kLevels; ++l) {
    int64_t n = m.pairs_per_row[l];
    if (n == 0) continue;
    std::printf("  %-7s %12lld %14.6g %10.4f %11.2f%% %11.2f%%\n", plan::level_name(l),
                static_cast<long long>(n), m.ladder[l], m.ladder[l] * p.nranks, 100 * m.share[l],
                100.0 * static_cast<double>(n) / p.nranks);
  }
  std::printf(
      "\n  predicted dispatch time: uniform %.4f ms, plan %.4f ms (bandwidth %.4f + "
      "latency %.4f)\n",
      m.uniform_seconds * 1e3, m.plan_seconds * 1e3, m.plan_bw_seconds * 1e3,
      m.plan_lat_seconds * 1e3);
  std::printf("  speedup over uniform: %.3fx (bandwidth part alone %.3fx: uniform %.4f ms)\n",
              m.speedup, m.bw_speedup, m.uniform_bw_seconds * 1e3);
  std::printf("  KL from uniform: %.4f nats\n", m.kl_from_uniform);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tamoe-plan: plan the MoE token dispatch for a cluster's links (DESIGN.md s3)"};
  std::string cost_model_file, synthetic_spec, out_file, svg_file, tradeoff_file;
  std::optional<int> nodes, rpn, nodes_per_leaf;
  std::optional<double> intra_gbps, inter_gbps, oversub;
  bool shared_nic = false, json_out = false;
  plan::MoeShape shape;
  plan::PlanOptions opt;
  int points = 16;

  auto* cm_opt = app.add_option("--cost-model", cost_model_file,
                                "cost model JSON (tamoe.cost_model, e.g. from tamoe-probe)");
  app.add_option("--synthetic", synthetic_spec,
                 "synthetic cluster 'nodes=2,rpn=8,intra=450,nic=50,shared_nic=0,leaf=0,"
                 "oversub=1' (flags below override its keys)")
      ->excludes(cm_opt);
  app.add_option("--nodes", nodes, "synthetic: nodes")->excludes(cm_opt);
  app.add_option("--ranks-per-node", rpn, "synthetic: ranks (GPUs) per node")->excludes(cm_opt);
  app.add_option("--intra-gbps", intra_gbps, "synthetic: per-rank intra-node bandwidth, GB/s")
      ->excludes(cm_opt);
  app.add_option("--inter-gbps", inter_gbps,
                 "synthetic: NIC bandwidth, GB/s (per rank's NIC, "
                 "or the node's with --shared-nic)")
      ->excludes(cm_opt);
  app.add_flag("--shared-nic", shared_nic, "synthetic: one NIC per node shared by its ranks")
      ->excludes(cm_opt);
  app.add_option("--nodes-per-leaf", nodes_per_leaf,
                 "synthetic: nodes per leaf switch (0: one switch)")
      ->excludes(cm_opt);
  app.add_option("--oversub", oversub, "synthetic: leaf oversubscription (down:up), >= 1")
      ->excludes(cm_opt);
  app.add_option("--experts-per-rank,-E", shape.experts_per_rank, "experts per rank E")
      ->capture_default_str();
  app.add_option("--tokens,-S", shape.tokens_per_rank, "tokens per rank S")->capture_default_str();
  app.add_option("--top-k,-k", shape.top_k, "experts per token k")->capture_default_str();
  app.add_option("--hidden,-H", shape.hidden, "hidden size H")->capture_default_str();
  app.add_option("--bytes", shape.bytes_per_element, "bytes per element")->capture_default_str();
  app.add_option("--capacity-factor", shape.capacity_factor, "capacity factor cf")
      ->capture_default_str();
  app.add_option("--mode", opt.mode, "lp | sym | sinkhorn | uniform | auto")->capture_default_str();
  app.add_option("--rho", opt.rho, "bound X_ij <= rho/P, rho >= 1 (1 = uniform)")
      ->capture_default_str();
  app.add_option("--kl-budget", opt.kl_budget, "sinkhorn: largest KL from uniform (nats)");
  app.add_option("--eps", opt.eps, "sinkhorn: fixed relative temperature (0: sweep)");
  app.add_option("--out,-o", out_file, "write the plan (tamoe.plan JSON) here");
  app.add_option("--svg", svg_file, "draw the heat-map of X (SVG)");
  app.add_option("--tradeoff-svg", tradeoff_file,
                 "draw predicted time vs KL from uniform over a Sinkhorn eps sweep (SVG)");
  app.add_option("--points", points, "eps values on the trade-off curve")->capture_default_str();
  app.add_flag("--json", json_out, "print a machine-readable summary instead of the table");
  CLI11_PARSE(app, argc, argv);

  try {
    plan::Plan p;
    std::optional<topo::CostModel> model;
    topo::SyntheticCluster c;
    if (!cost_model_file.empty()) {
      model = topo::CostModel::load(cost_model_file);
      p = plan::make_plan(*model, shape, opt);
    } else {
      if (!synthetic_spec.empty()) c = topo::parse_synthetic_cluster(synthetic_spec);
      if (nodes) c.nodes = *nodes;
      if (rpn) c.ranks_per_node = *rpn;
      if (intra_gbps) c.intra_bw_gbps = *intra_gbps;
      if (inter_gbps) c.nic_bw_gbps = *inter_gbps;
      if (shared_nic) c.nic_per_rank = false;
      if (nodes_per_leaf) c.nodes_per_leaf = *nodes_per_leaf;
      if (oversub) c.oversubscription = *oversub;
      p = plan::make_plan(c, shape, opt);
    }
    if (!out_file.empty()) p.save(out_file);
    if (!svg_file.empty()) plan::write_text_file(svg_file, plan::heatmap_svg(p));
    if (!tradeoff_file.empty()) {
      if (!model) {
        if (static_cast<int64_t>(c.nodes) * c.ranks_per_node > 2048)
          fail(Status::invalid_argument, "--tradeoff-svg", "at most 2048 ranks (dense Sinkhorn)",
               str(static_cast<int64_t>(c.nodes) * c.ranks_per_node, " ranks"));
        model = topo::make_synthetic(c);
      }
      auto curve = plan::tradeoff_curve(*model, shape, opt.rho, points, 0.01, 10);
      plan::write_text_file(
          tradeoff_file,
          plan::tradeoff_svg(curve, str("predicted dispatch time vs KL from uniform, P = ",
                                        model->nranks(), ", rho = ", opt.rho)));
    }
    if (json_out)
      std::cout << summary_json(p).dump(1) << "\n";
    else
      print_table(p);
  } catch (const Error& e) {
    std::fprintf(stderr, "tamoe-plan: %s\n", e.what());
    return 2;
  }
  return 0;
}
