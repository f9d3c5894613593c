// tamoe-train's loop on a tiny synthetic data set at 1/2/4 ranks (2 virtual nodes from 2 ranks):
// the same seed gives bit-identical parameters, and a run stopped mid-epoch and resumed from its
// checkpoint ends bit-identical to the uninterrupted run (parameters, Adam state via the
// parameters it produces, ta-bias controller state, test metrics).
#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <vector>

#include "catch_compat.h"
#include "collectives/alltoallv.h"
#include "collectives/groups.h"
#include "routing/losses.h"
#include "train/moe/trainer.h"

using namespace tamoe;
using namespace tamoe::train;
using namespace tamoe::train::moe;

namespace {

// 4x4 "images", 3 classes given by a fixed linear rule plus noise, so the model can learn.
Dataset make_data(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.rows = 4;
  d.cols = 4;
  d.classes = 3;
  d.images.resize(n, 16);
  d.labels.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s[3] = {0, 0, 0};
    for (int f = 0; f < 16; ++f) {
      const float v = static_cast<float>(rng.normal());
      d.images(i, f) = v;
      s[f % 3] += v;
    }
    d.labels[static_cast<size_t>(i)] = s[0] > s[1] ? (s[0] > s[2] ? 0 : 2) : (s[1] > s[2] ? 1 : 2);
  }
  return d;
}

struct Job {
  int rank = 0, P = 1;
  std::vector<int> node_of;
  coll::Groups g;
  std::unique_ptr<coll::AllToAll> a2a;
  route::ExpertLayout layout;
  Job() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    const int nodes = P >= 2 ? 2 : 1;
    for (int r = 0; r < P; ++r) node_of.push_back(r * nodes / P);
    g = coll::Groups::from_nodes(MPI_COMM_WORLD, node_of);
    a2a = std::make_unique<coll::AllToAll>(g);
    layout = route::ExpertLayout::regular(P, 2, P / nodes);
  }
};

ModelConfig model_config(const Job& j, AuxKind aux) {
  ModelConfig mc;
  mc.in_features = 16;
  mc.classes = 3;
  mc.layers = 2;
  mc.moe.hidden = 8;
  mc.moe.ffn_hidden = 12;
  mc.moe.gate.k = 2;
  mc.moe.gate.capacity_factor = 1.0;
  mc.moe.aux = aux;
  mc.moe.aux_weight = 0.05;
  // A ladder plan row: twice the weight on this rank's own node.
  const int P = j.P;
  std::vector<double> row(P);
  for (int r = 0; r < P; ++r) row[r] = j.node_of[r] == j.node_of[j.rank] ? 2.0 : 1.0;
  double s = 0;
  for (double v : row) s += v;
  for (double& v : row) v /= s;
  mc.moe.plan_row = row;
  mc.moe.target = route::target_from_plan(row, j.layout);
  return mc;
}

std::string temp_prefix() {
  long id = static_cast<long>(::getpid());
  MPI_Bcast(&id, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  return (std::filesystem::temp_directory_path() / ("tamoe_test_trainer_" + std::to_string(id)))
      .string();
}

TrainConfig train_config() {
  TrainConfig tc;
  tc.epochs = 2;
  tc.batch = 8;
  tc.lr = 5e-3;
  tc.seed = 42;
  tc.interval = 3;
  tc.eval_batch = 16;
  return tc;
}

}  // namespace

TEST_CASE("trainer: same seed, same parameters; the model learns") {
  Job j;
  const Dataset train = make_data(320, 1), test = make_data(64, 2);
  const ModelConfig mc = model_config(j, AuxKind::ta_loss);
  Trainer a(train_config(), mc, j.layout, *j.a2a, train, test);
  const EvalResult before = a.evaluate(test);
  REQUIRE(a.run(nullptr, nullptr));
  Trainer b(train_config(), mc, j.layout, *j.a2a, train, test);
  REQUIRE(b.run(nullptr, nullptr));
  CHECK(a.model().params().flatten_values() == b.model().params().flatten_values());
  const EvalResult ea = a.evaluate(test), eb = b.evaluate(test);
  CHECK(ea.accuracy == eb.accuracy);
  CHECK(ea.loss == eb.loss);
  CHECK(ea.samples == 64);
  // Two epochs on an easy rule: clearly better than the untrained model.
  CHECK(ea.loss < before.loss);
  TrainConfig other = train_config();
  other.seed = 43;
  Trainer c(other, mc, j.layout, *j.a2a, train, test);
  REQUIRE(c.run(nullptr, nullptr));
  CHECK(a.model().params().flatten_values() != c.model().params().flatten_values());
}

TEST_CASE("trainer: resume from a mid-epoch checkpoint reproduces the uninterrupted run") {
  for (AuxKind aux : {AuxKind::switch_loss, AuxKind::ta_bias}) {
    Job j;
    INFO("aux " << aux_name(aux));
    const Dataset train = make_data(320, 1), test = make_data(64, 2);
    const ModelConfig mc = model_config(j, aux);
    const std::string prefix = temp_prefix();

    TrainConfig full = train_config();
    full.checkpoint = prefix + ".full";
    Trainer a(full, mc, j.layout, *j.a2a, train, test);
    REQUIRE(a.run(nullptr, nullptr));

    TrainConfig part = train_config();
    part.checkpoint = prefix + ".part";
    const int64_t per_epoch = 320 / (8 * j.P);
    part.stop_after_steps = per_epoch + 3;  // mid second epoch, at an interval boundary
    Trainer b(part, mc, j.layout, *j.a2a, train, test);
    CHECK_FALSE(b.run(nullptr, nullptr));
    CHECK(b.step() == per_epoch + 3);

    TrainConfig resumed = train_config();
    resumed.checkpoint = prefix + ".part";
    resumed.resume = true;
    Trainer c(resumed, mc, j.layout, *j.a2a, train, test);
    REQUIRE(c.run(nullptr, nullptr));
    CHECK(c.step() == a.step());
    CHECK(a.model().params().flatten_values() == c.model().params().flatten_values());
    const EvalResult ea = a.evaluate(test), ec = c.evaluate(test);
    CHECK(ea.accuracy == ec.accuracy);
    CHECK(ea.loss == ec.loss);
    // A resume from a checkpoint of another configuration is refused.
    TrainConfig wrong = resumed;
    ModelConfig mc2 = mc;
    mc2.moe.ffn_hidden = 10;
    Trainer d(wrong, mc2, j.layout, *j.a2a, train, test);
    CHECK_THROWS(d.run(nullptr, nullptr));
    MPI_Barrier(MPI_COMM_WORLD);
    std::remove((prefix + ".full.rank" + std::to_string(j.rank)).c_str());
    std::remove((prefix + ".part.rank" + std::to_string(j.rank)).c_str());
  }
}
