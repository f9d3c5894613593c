// tamoe-train's GPU path against its host path at 1/2/4 ranks (2 virtual nodes from 2 ranks):
// from the same initial parameters and batches, a few optimizer steps give the same routing,
// the same losses and gradients, and parameters equal at fp32 tolerance; evaluation agrees; the
// GPU loop learns; a run resumed from its checkpoint (on the GPU or the host path) ends where the
// uninterrupted one does. Skips (passes with a warning) when a rank has no CUDA device of its own.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "catch_compat.h"
#include "collectives/device.h"
#include "mpi/train_common/train_fixtures.h"
#include "train/allreduce_grads.h"
#include "train/gpu/gpu_trainer.h"
#include "train/loss.h"

using namespace tamoe;
using namespace tamoe::train;
using namespace tamoe::train::moe;
using namespace tamoe::train::moe::fixtures;

namespace {

// The host trainers' job (train_fixtures.h) with this rank's GPU; dev stays null (and the tests
// skip) when a rank has no CUDA device of its own.
struct GpuJob : Job {
  std::unique_ptr<coll::NcclGroups> nccl;
  std::unique_ptr<coll::DeviceAllToAll> dev;
  GpuJob() {
    try {
      nccl = coll::NcclGroups::create(g);
    } catch (const Error& e) {
      if (e.status() != Status::unavailable) throw;
      WARN("SKIP GPU trainer: " << e.what());
      return;
    }
    dev = std::make_unique<coll::DeviceAllToAll>(*nccl);
  }
};

TrainConfig train_config() {
  TrainConfig tc;
  tc.epochs = 2;
  tc.batch = 16;
  tc.lr = 5e-3;
  tc.seed = 42;
  tc.interval = 4;
  tc.eval_batch = 24;
  tc.bias_rate = 0.05;
  return tc;
}

// Largest |a - b| over a tensor relative to its largest |b| (floor 1e-2), worst over tensors.
double worst_rel(const ParamRegistry& a, const ParamRegistry& b, bool grads, std::string* which) {
  double worst = 0;
  for (size_t i = 0; i < a.entries().size(); ++i) {
    const MatrixRf& x = grads ? a.entries()[i].param->grad : a.entries()[i].param->value;
    const MatrixRf& y = grads ? b.entries()[i].param->grad : b.entries()[i].param->value;
    const double d = (x - y).cwiseAbs().maxCoeff();
    const double m = std::max(1e-2, static_cast<double>(y.cwiseAbs().maxCoeff()));
    if (d / m > worst) {
      worst = d / m;
      *which = a.entries()[i].name;
    }
  }
  double all = 0;
  MPI_Allreduce(&worst, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return all;
}

struct Case {
  const char* name;
  AuxKind aux;
  route::Overflow overflow;
};

}  // namespace

TEST_CASE("gpu trainer: steps equal the host path (routing, losses, gradients, parameters)",
          "[train][gpu]") {
  GpuJob j;
  if (!j.dev) return;
  const Dataset train = make_data(256, 1);
  for (const Case c : {Case{"switch/drop", AuxKind::switch_loss, route::Overflow::drop_lowest},
                       Case{"ta/reroute", AuxKind::ta_loss, route::Overflow::reroute},
                       Case{"ta-bias/dropless", AuxKind::ta_bias, route::Overflow::dropless}}) {
    INFO("case " << c.name << ", rank " << j.rank << " of " << j.P);
    const ModelConfig mc = model_config(j, c.aux, c.overflow);
    const TrainConfig tc = train_config();
    gpu::GpuTrainer g(tc, mc, j.layout, *j.a2a, *j.dev, train, train);
    // The host reference: the same model, seed and rank, stepped as moe::Trainer steps.
    MoeClassifier h(mc, j.layout, *j.a2a, tc.seed, j.rank);
    AdamOptions ao;
    ao.lr = tc.lr;
    Adam adam(h.params(), ao);
    std::vector<route::BiasController> bias;
    route::BiasControllerOptions bo;
    bo.rate = tc.bias_rate;
    if (c.aux == AuxKind::ta_bias)
      for (auto& l : h.layers) bias.emplace_back(l->config().target, bo);
    MoeClassifier check(mc, j.layout, *j.a2a, tc.seed, j.rank);  // receives the GPU's values
    BatchSampler sampler(train.size(), tc.batch, tc.seed, j.rank, j.P);
    sampler.set_epoch(0);
    MatrixRf x;
    std::vector<int> y;
    for (int step = 0; step < 5; ++step) {
      INFO("step " << step);
      gather_batch(train, sampler.batch(step), x, y);
      h.params().zero_grad();
      const CrossEntropy<float> ce = softmax_cross_entropy(h.forward(x), y);
      h.backward(ce.grad);
      allreduce_grads(h.dense_params(), MPI_COMM_WORLD);
      for (const auto& e : h.expert_params().entries())
        e.param->grad *= 1.0f / static_cast<float>(j.P);

      // The GPU step, with its gradients read before Adam through a manual step.
      const gpu::StepResult r = g.train_step(x, y);
      for (size_t l = 0; l < h.layers.size(); ++l) {
        const auto& he = h.layers[l]->routing().expert;
        const auto& ge = g.model().layers[l]->routing().expert;
        REQUIRE(he.rows() == ge.rows());
        CHECK(he == ge);
        CHECK(h.layers[l]->topk_counts() == g.model().layers[l]->topk_counts());
        CHECK(g.model().layers[l]->aux_loss() ==
              Catch::Approx(h.layers[l]->aux_loss()).epsilon(1e-4).margin(1e-6));
      }
      CHECK(r.loss == Catch::Approx(ce.loss).epsilon(1e-4));
      CHECK(r.correct == ce.correct);
      // Gradients as the GPU's Adam saw them (sums; the 1/P is applied inside its step).
      g.model().download_grads(check.params());
      for (const auto& e : check.params().entries())
        e.param->grad *= 1.0f / static_cast<float>(j.P);
      std::string worst_g;
      const double gerr = worst_rel(check.params(), h.params(), true, &worst_g);
      INFO("worst gradient " << worst_g << " rel " << gerr);
      CHECK(gerr < 1e-4);
      adam.step();
      for (size_t l = 0; l < bias.size(); ++l) {
        bias[l].update(h.layers[l]->topk_counts());
        h.layers[l]->set_bias(bias[l].bias());
      }
    }
    g.model().download_values(check.params());
    std::string worst_p;
    const double perr = worst_rel(check.params(), h.params(), false, &worst_p);
    if (j.rank == 0)
      std::printf("gpu vs host, %s, %d ranks: after 5 steps worst parameter rel diff %.2e (%s)\n",
                  c.name, j.P, perr, worst_p.c_str());
    CHECK(perr < 1e-3);
  }
}

TEST_CASE("gpu trainer: the loop learns and evaluation equals the host's", "[train][gpu]") {
  GpuJob j;
  if (!j.dev) return;
  const Dataset train = make_data(320, 1), test = make_data(100, 2);
  const ModelConfig mc = model_config(j, AuxKind::switch_loss, route::Overflow::drop_lowest);
  const TrainConfig tc = train_config();
  gpu::GpuTrainer g(tc, mc, j.layout, *j.a2a, *j.dev, train, test);
  const EvalResult before = g.evaluate(test);
  int intervals = 0, epochs = 0;
  REQUIRE(g.run([&](const IntervalReport& r) { intervals += r.m.samples > 0; },
                [&](int64_t, const EvalResult&) { ++epochs; }));
  CHECK(epochs == 2);
  CHECK(intervals >= 2);
  const EvalResult after = g.evaluate(test);
  CHECK(after.samples == 100);
  CHECK(after.loss < before.loss);
  const Metrics tot = g.totals();
  CHECK(tot.samples == 2 * 320 / (tc.batch * j.P) * tc.batch * j.P);
  CHECK(tot.total > 0);
  CHECK(tot.times.experts > 0);
  // The host model with the GPU's trained parameters evaluates the same.
  Trainer h(tc, mc, j.layout, *j.a2a, train, test);
  g.model().download_values(h.model().params());
  const EvalResult he = h.evaluate(test);
  CHECK(he.samples == after.samples);
  CHECK(he.loss == Catch::Approx(after.loss).epsilon(1e-4));
  CHECK(std::abs(he.accuracy - after.accuracy) <= 0.011);  // a near tie may flip one sample
  CHECK(he.share_cross_node == Catch::Approx(after.share_cross_node).margin(0.02));
}

TEST_CASE("gpu trainer: a resumed run equals the uninterrupted one, on either device",
          "[train][gpu]") {
  GpuJob j;
  if (!j.dev) return;
  const Dataset train = make_data(320, 1), test = make_data(64, 2);
  const ModelConfig mc = model_config(j, AuxKind::ta_bias, route::Overflow::reroute);
  const std::string prefix = temp_prefix("tamoe_test_gpu_ckpt_");
  TrainConfig tc = train_config();
  const int64_t per_epoch = train.size() / (tc.batch * j.P);
  tc.checkpoint = prefix + ".full";
  gpu::GpuTrainer full(tc, mc, j.layout, *j.a2a, *j.dev, train, test);
  REQUIRE(full.run(nullptr, nullptr));
  MoeClassifier want(mc, j.layout, *j.a2a, tc.seed, j.rank);
  full.model().download_values(want.params());

  // Stopped mid-epoch (after its checkpoint), then resumed on the GPU and on the host.
  tc.checkpoint = prefix + ".part";
  tc.stop_after_steps = per_epoch + 3;
  {
    gpu::GpuTrainer part(tc, mc, j.layout, *j.a2a, *j.dev, train, test);
    REQUIRE_FALSE(part.run(nullptr, nullptr));
  }
  tc.stop_after_steps = -1;
  tc.resume = true;
  const std::string part_file = str(prefix, ".part.rank", j.rank);
  std::filesystem::copy_file(part_file, part_file + ".bak");
  gpu::GpuTrainer resumed(tc, mc, j.layout, *j.a2a, *j.dev, train, test);
  REQUIRE(resumed.run(nullptr, nullptr));
  CHECK(resumed.step() == full.step());
  MoeClassifier got(mc, j.layout, *j.a2a, tc.seed, j.rank);
  resumed.model().download_values(got.params());
  std::string which;
  const double gpu_err = worst_rel(got.params(), want.params(), false, &which);
  INFO("GPU resume: worst " << which << " rel " << gpu_err);
  CHECK(gpu_err < 1e-6);

  std::filesystem::rename(part_file + ".bak", part_file);
  Trainer host(tc, mc, j.layout, *j.a2a, train, test);
  REQUIRE(host.run(nullptr, nullptr));
  CHECK(host.step() == full.step());
  const double host_err = worst_rel(host.model().params(), want.params(), false, &which);
  INFO("host resume of a GPU checkpoint: worst " << which << " rel " << host_err);
  CHECK(host_err < 1e-3);
  for (const char* s : {".full.rank", ".part.rank"})
    std::filesystem::remove(str(prefix, s, j.rank));
}
