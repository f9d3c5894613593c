// tamoe-train: an expert-parallel MoE classifier on Fashion-MNIST under mpirun (host path, Eigen).
// Every rank holds E experts of each MoE layer; tokens travel through the collectives'
// dispatch/combine; the gate runs the routing layer with no aux loss, the Switch loss, the
// topology-aware loss or the loss-free bias, toward the planner's target. See docs/tamoe_train.md.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "collectives/alltoallv.h"
#include "collectives/groups.h"
#include "planner/planner.h"
#include "runtime/error.h"
#include "runtime/mpi_main.h"
#include "topology/cluster.h"
#include "topology/synthetic.h"
#include "train/dataset.h"
#include "train/moe/trainer.h"
#if TAMOE_HAVE_CUDA
#include "collectives/device.h"
#include "train/gpu/gpu_trainer.h"
#endif

namespace {

using namespace tamoe;
using train::moe::AuxKind;

struct Args {
  int epochs = 3, batch = 64, hidden = 64, ffn_hidden = 128, experts_per_rank = 2, top_k = 2;
  int layers = 2, interval = 100, virtual_nodes = -1, node_limit = 0, eval_batch = 500;
  double lr = 2e-3, aux_weight = 0.01, capacity_factor = 1.25, rho = 1.5, bias_rate = 1e-3;
  uint64_t seed = 1;
  std::string aux = "switch", overflow = "drop", plan_file, cluster_spec, log_file, checkpoint;
  std::string data_dir = train::kFashionMnistDir, a2a_algo, plan_mode = "sym";
  std::string device = "host";
  int64_t max_train = -1, max_test = -1, stop_after = -1;
  bool resume = false, quiet = false;
};

std::string hms(double s) {
  const int t = static_cast<int>(s + 0.5);
  return t >= 60 ? str(t / 60, "m", (t % 60 < 10 ? "0" : ""), t % 60, "s") : str(t, "s");
}

route::Overflow parse_overflow(const std::string& s) {
  if (s == "drop") return route::Overflow::drop_lowest;
  if (s == "reroute") return route::Overflow::reroute;
  if (s == "dropless") return route::Overflow::dropless;
  fail(Status::invalid_argument, "--overflow", "drop, reroute or dropless", s);
}

int run(int argc, char** argv) {
  int rank = 0, P = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  Args a;
  CLI::App app{
      "tamoe-train: expert-parallel MoE classifier on Fashion-MNIST (host path, or --device gpu)"};
  app.add_option("--epochs", a.epochs)->capture_default_str();
  app.add_option("--batch", a.batch, "samples per rank per step")->capture_default_str();
  app.add_option("--hidden", a.hidden, "model width H")->capture_default_str();
  app.add_option("--ffn-hidden", a.ffn_hidden, "inner width of an expert")->capture_default_str();
  app.add_option("--layers", a.layers, "MoE blocks (>= 2 for the issue's model)")
      ->capture_default_str();
  app.add_option("--experts-per-rank", a.experts_per_rank)->capture_default_str();
  app.add_option("--top-k", a.top_k)->capture_default_str();
  app.add_option("--lr", a.lr, "Adam learning rate")->capture_default_str();
  app.add_option("--seed", a.seed)->capture_default_str();
  app.add_option("--aux", a.aux, "gate balancing: none|switch|ta|ta-bias")
      ->check(CLI::IsMember({"none", "switch", "ta", "ta-bias"}))
      ->capture_default_str();
  app.add_option("--aux-weight", a.aux_weight)->capture_default_str();
  app.add_option("--bias-rate", a.bias_rate, "ta-bias: bias step per update (logits)")
      ->capture_default_str();
  app.add_option("--capacity-factor", a.capacity_factor)->capture_default_str();
  app.add_option("--overflow", a.overflow, "drop|reroute|dropless")->capture_default_str();
  app.add_option("--node-limit", a.node_limit, "a token's experts span at most M nodes (0: off)")
      ->capture_default_str();
  app.add_option("--rho", a.rho, "planner bound X_ij <= rho/P for the TA target")
      ->capture_default_str();
  app.add_option("--plan", a.plan_file, "tamoe.plan JSON (tamoe-plan) instead of planning here");
  app.add_option("--plan-mode", a.plan_mode,
                 "planner mode when planning here (sym gives every pair of a level the same share; "
                 "an LP vertex may leave some experts a zero target, which the TA loss refuses)")
      ->capture_default_str();
  app.add_option("--cluster", a.cluster_spec,
                 "synthetic cluster the planner models when no --plan is given, e.g. "
                 "'intra=450,nic=50' (nodes and ranks per node come from the job)");
  app.add_option("--virtual-nodes", a.virtual_nodes,
                 "split each host into this many nodes (TAMOE_VIRTUAL_NODES)");
  app.add_option("--a2a-algo", a.a2a_algo, "all-to-all override (TAMOE_A2A_ALGO grammar)");
  app.add_option("--interval", a.interval, "steps per report and checkpoint")
      ->capture_default_str();
  app.add_option("--log", a.log_file, "JSON Lines log (rank 0)");
  app.add_option("--checkpoint", a.checkpoint, "checkpoint path prefix (one file per rank)");
  app.add_flag("--resume", a.resume, "continue from --checkpoint");
  app.add_option("--data", a.data_dir, "Fashion-MNIST idx directory")->capture_default_str();
  app.add_option("--max-train", a.max_train, "use the first N training samples (-1: all)");
  app.add_option("--max-test", a.max_test, "use the first N test samples (-1: all)");
  app.add_option("--eval-batch", a.eval_batch)->capture_default_str();
  app.add_option("--stop-after", a.stop_after, "stop after this many steps (tests)");
  app.add_flag("-q,--quiet", a.quiet, "no interval lines on the terminal");
  app.add_option("--device", a.device,
                 "host: Eigen + MPI; gpu: cuBLAS, tamoe kernels, NCCL (one GPU per rank)")
      ->check(CLI::IsMember({"host", "gpu"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = 0;
    if (rank == 0) rc = app.exit(e);
    return e.get_exit_code() == 0 ? 0 : (rc ? rc : 2);
  }
  if (a.resume && a.checkpoint.empty())
    fail(Status::invalid_argument, "--resume", "a --checkpoint path", "none");

  topo::ClusterOptions co;
  co.virtual_nodes = a.virtual_nodes;
  topo::Cluster cluster = topo::Cluster::create(MPI_COMM_WORLD, co);
  coll::Groups groups = coll::Groups::from_cluster(cluster);
  coll::AllToAllOptions ao;
  ao.algo = a.a2a_algo;
  coll::AllToAll a2a(groups, ao);
  route::ExpertLayout layout;
  layout.experts_per_rank = a.experts_per_rank;
  for (int r = 0; r < P; ++r) layout.node_of_rank.push_back(cluster.node_of(r));

  train::moe::ModelConfig mc;
  mc.layers = a.layers;
  mc.moe.hidden = a.hidden;
  mc.moe.ffn_hidden = a.ffn_hidden;
  mc.moe.gate.k = a.top_k;
  mc.moe.gate.capacity_factor = a.capacity_factor;
  mc.moe.gate.overflow = parse_overflow(a.overflow);
  mc.moe.gate.max_nodes = a.node_limit;
  mc.moe.aux = train::moe::parse_aux(a.aux, "--aux");
  mc.moe.aux_weight = a.aux_weight;

  // The plan: from a file, or planned here on a synthetic model of this job's node layout.
  std::string plan_desc = "uniform";
  if (mc.moe.aux == AuxKind::ta_loss || mc.moe.aux == AuxKind::ta_bias || !a.plan_file.empty()) {
    plan::Plan pl;
    plan::MoeShape shape;
    shape.experts_per_rank = a.experts_per_rank;
    shape.tokens_per_rank = a.batch;
    shape.top_k = a.top_k;
    shape.hidden = a.hidden;
    shape.bytes_per_element = 4;
    shape.capacity_factor = a.capacity_factor;
    if (!a.plan_file.empty()) {
      pl = plan::Plan::load(a.plan_file);
      pl.check_matches(P, a.experts_per_rank, a.plan_file);
      plan_desc = str(a.plan_file, " (", plan::mode_name(pl.mode), ", rho ", pl.rho, ")");
    } else {
      if (!cluster.uniform())
        fail(Status::invalid_argument, "tamoe-train: planning", "nodes of equal size",
             cluster.describe());
      topo::SyntheticCluster sc = topo::parse_synthetic_cluster(a.cluster_spec);
      sc.nodes = cluster.nnodes();
      sc.ranks_per_node = P / cluster.nnodes();
      plan::PlanOptions po;
      po.rho = a.rho;
      po.mode = a.plan_mode;
      pl = plan::make_plan(sc, shape, po);
      plan_desc = str(plan::mode_name(pl.mode), " plan, rho ", a.rho, ", on ", topo::to_string(sc));
    }
    if (rank == 0)
      std::printf("plan: X self %.4f, same node %.4f, remote %.4f (rank 0's row)\n", pl.at(0, 0),
                  P / cluster.nnodes() > 1 ? pl.at(0, 1) : 0.0,
                  cluster.nnodes() > 1 ? pl.at(0, P - 1) : 0.0);
    std::vector<double> row(P);
    for (int j = 0; j < P; ++j) row[j] = pl.at(rank, j);
    const std::vector<double> t = pl.target(rank);
    mc.moe.target =
        Eigen::Map<const Eigen::VectorXd>(t.data(), static_cast<Eigen::Index>(t.size()));
    mc.moe.plan_row = row;
  }

  train::Dataset tr = train::load_fashion_mnist(train::Split::train, a.data_dir, a.max_train);
  train::Dataset te = train::load_fashion_mnist(train::Split::test, a.data_dir, a.max_test);
  const train::Normalization norm = train::fit_normalization(tr);
  train::standardize(tr, norm);
  train::standardize(te, norm);
  mc.in_features = tr.features();
  mc.classes = tr.classes;

  train::moe::TrainConfig tc;
  tc.epochs = a.epochs;
  tc.batch = a.batch;
  tc.lr = a.lr;
  tc.seed = a.seed;
  tc.interval = a.interval;
  tc.checkpoint = a.checkpoint;
  tc.resume = a.resume;
  tc.bias_rate = a.bias_rate;
  tc.eval_batch = a.eval_batch;
  tc.stop_after_steps = a.stop_after;
  // --device gpu: NCCL needs one GPU per rank; NcclGroups::create makes all ranks agree on that.
  const bool gpu = a.device == "gpu";
  std::unique_ptr<train::moe::Trainer> host_trainer;
#if TAMOE_HAVE_CUDA
  std::unique_ptr<coll::NcclGroups> nccl;
  std::unique_ptr<coll::DeviceAllToAll> dev_a2a;
  std::unique_ptr<train::gpu::GpuTrainer> gpu_trainer;
  if (gpu) {
    try {
      nccl = coll::NcclGroups::create(groups);
    } catch (const Error& e) {
      if (e.status() != Status::unavailable) throw;
      fail(Status::unavailable, "tamoe-train --device gpu",
           str("NCCL needs one CUDA device per rank on every host: run at most as many ranks per "
               "host as it has GPUs, or use --device host (",
               e.what(), ")"));
    }
    dev_a2a = std::make_unique<coll::DeviceAllToAll>(*nccl, ao);
    gpu_trainer = std::make_unique<train::gpu::GpuTrainer>(tc, mc, layout, a2a, *dev_a2a, tr, te);
  }
#else
  if (gpu)
    fail(Status::unavailable, "--device gpu", "a build with CUDA and NCCL (TAMOE_WITH_CUDA)",
         "this tamoe-train was built without them");
#endif
  if (!gpu) host_trainer = std::make_unique<train::moe::Trainer>(tc, mc, layout, a2a, tr, te);

  std::ofstream log;
  if (rank == 0 && !a.log_file.empty()) {
    log.open(a.log_file, a.resume ? std::ios::app : std::ios::trunc);
    if (!log) fail(Status::invalid_argument, "--log", "a writable file", a.log_file);
  }
  if (rank == 0) {
    std::printf(
        "tamoe-train (%s): %s; %d MoE layers x %d experts (E=%d per rank), top-%d, H=%d, "
        "ffn=%d; aux %s (weight %g); target: %s\n",
        a.device.c_str(), cluster.describe().c_str(), a.layers, layout.num_experts(),
        a.experts_per_rank, a.top_k, a.hidden, a.ffn_hidden, a.aux.c_str(), a.aux_weight,
        plan_desc.c_str());
    std::printf("data: %lld train, %lld test samples; batch %d per rank (%d global)\n",
                static_cast<long long>(tr.size()), static_cast<long long>(te.size()), a.batch,
                a.batch * P);
    std::fflush(stdout);
  }
  auto on_interval = [&](const train::moe::IntervalReport& r) {
    if (rank != 0) return;
    const auto& m = r.m;
    const double steps = std::max<double>(1, static_cast<double>(m.samples) / (a.batch * P));
    const double ms = 1e3 / steps;
    if (!a.quiet) {
      std::printf(
          "ep %lld/%d step %lld/%lld | loss %.4f aux %.4f acc %5.1f%% | copies rank %4.1f%% node "
          "%4.1f%% cross %4.1f%% drop %4.1f%% | ms/step gate %.2f perm %.2f a2a %.2f exp %.2f "
          "comb %.2f ar %.2f total %.2f\n",
          static_cast<long long>(r.epoch + 1), a.epochs, static_cast<long long>(r.step),
          static_cast<long long>(r.steps_total), m.loss, m.aux, 100 * m.accuracy,
          100 * m.share_on_rank, 100 * m.share_in_node, 100 * m.share_cross_node,
          100 * m.drop_share, ms * m.times.gate, ms * m.times.permute, ms * m.times.a2a,
          ms * m.times.experts, ms * m.times.combine, ms * m.allreduce, ms * m.total);
      std::printf("  [%3.0f%%] elapsed %s, ETA %s\n",
                  100.0 * static_cast<double>(r.step) / static_cast<double>(r.steps_total),
                  hms(r.elapsed_s).c_str(), hms(r.eta_s).c_str());
      std::fflush(stdout);
    }
    if (log) {
      nlohmann::json j = m.to_json();
      j["kind"] = "interval";
      j["epoch"] = r.epoch;
      j["step"] = r.step;
      j["steps_total"] = r.steps_total;
      j["elapsed_s"] = r.elapsed_s;
      j["eta_s"] = r.eta_s;
      log << j.dump() << "\n" << std::flush;
    }
  };
  train::moe::EvalResult last;
  auto on_epoch = [&](int64_t epoch, const train::moe::EvalResult& e) {
    last = e;
    if (rank != 0) return;
    std::printf(
        "epoch %lld: test loss %.4f, test accuracy %.2f%% (%lld samples), cross-node "
        "%.1f%%, drop %.1f%%\n",
        static_cast<long long>(epoch + 1), e.loss, 100 * e.accuracy,
        static_cast<long long>(e.samples), 100 * e.share_cross_node, 100 * e.drop_share);
    std::fflush(stdout);
    if (log)
      log << nlohmann::json{{"kind", "epoch"},
                            {"epoch", epoch},
                            {"test_loss", e.loss},
                            {"test_accuracy", e.accuracy},
                            {"test_samples", e.samples},
                            {"test_share_cross_node", e.share_cross_node},
                            {"test_drop_share", e.drop_share}}
                 .dump()
          << "\n"
          << std::flush;
  };
#if TAMOE_HAVE_CUDA
  const bool finished =
      gpu ? gpu_trainer->run(on_interval, on_epoch) : host_trainer->run(on_interval, on_epoch);
  const train::moe::Metrics tot = gpu ? gpu_trainer->totals() : host_trainer->totals();
  const int64_t steps_run = gpu ? gpu_trainer->step() : host_trainer->step();
#else
  const bool finished = host_trainer->run(on_interval, on_epoch);
  const train::moe::Metrics tot = host_trainer->totals();
  const int64_t steps_run = host_trainer->step();
#endif
  if (!finished) {
    if (rank == 0)
      std::printf("stopped after step %lld (--stop-after)\n", static_cast<long long>(steps_run));
    return 0;
  }
  if (rank == 0) {
    const double steps = std::max<double>(1, static_cast<double>(tot.samples) / (a.batch * P));
    const double ms = 1e3 / steps;
    std::printf("\nsummary (this run: %lld steps)\n", static_cast<long long>(steps));
    std::printf("  %-28s %s\n", "device", a.device.c_str());
    std::printf("  %-28s %s\n", "aux", a.aux.c_str());
    std::printf("  %-28s %.2f%%\n", "test accuracy", 100 * last.accuracy);
    std::printf("  %-28s %.4f\n", "test loss", last.loss);
    std::printf("  %-28s %.4f / %.2f%%\n", "train loss / accuracy", tot.loss, 100 * tot.accuracy);
    std::printf("  %-28s %.1f%% / %.1f%% / %.1f%%\n", "copies rank / node / cross",
                100 * tot.share_on_rank, 100 * tot.share_in_node, 100 * tot.share_cross_node);
    std::printf("  %-28s %.2f%%\n", "dropped copies", 100 * tot.drop_share);
    std::printf("  %-28s %.2f %.2f %.2f %.2f %.2f %.2f\n", "ms/step gate perm a2a exp comb ar",
                ms * tot.times.gate, ms * tot.times.permute, ms * tot.times.a2a,
                ms * tot.times.experts, ms * tot.times.combine, ms * tot.allreduce);
    std::printf("  %-28s %.2f ms (%s total)\n", "step time", ms * tot.total,
                hms(tot.total).c_str());
    if (log) {
      nlohmann::json j = tot.to_json();
      j["kind"] = "summary";
      j["test_accuracy"] = last.accuracy;
      j["test_loss"] = last.loss;
      j["test_share_cross_node"] = last.share_cross_node;
      j["aux_kind"] = a.aux;
      j["device"] = a.device;
      j["seed"] = a.seed;
      log << j.dump() << "\n";
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return tamoe::mpi_main("tamoe-train", argc, argv, run);
}
