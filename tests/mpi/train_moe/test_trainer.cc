// tamoe-train's loop on a tiny synthetic data set at 1/2/4 ranks (2 virtual nodes from 2 ranks):
// the same seed gives bit-identical parameters, and a run stopped mid-epoch and resumed from its
// checkpoint ends bit-identical to the uninterrupted run (parameters, Adam state via the
// parameters it produces, ta-bias controller state, test metrics).
#include <mpi.h>

#include <cstdio>
#include <vector>

#include "catch_compat.h"
#include "mpi/train_common/train_fixtures.h"
#include "train/moe/trainer.h"

using namespace tamoe;
using namespace tamoe::train;
using namespace tamoe::train::moe;
using namespace tamoe::train::moe::fixtures;

namespace {

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
    const std::string prefix = temp_prefix("tamoe_test_trainer_");

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
