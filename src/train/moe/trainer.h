// The training loop of tamoe-train: data-parallel batches (BatchSampler), the MoE classifier,
// gradient averaging of the dense parameters, Adam, the loss-free bias controllers (ta-bias),
// per-interval metrics reduced over ranks, per-rank atomic checkpoints and resume, evaluation.
//
// Objective: the mean over ranks of each rank's (cross-entropy + aux_weight * aux) on its batch.
// Dense gradients are averaged by allreduce_grads; an expert's gradient already sums the
// contributions of every rank's tokens, so it is divided by P to be the gradient of that mean.
//
// Checkpoints: every rank writes "<path>.rank<r>" (atomically, train/checkpoint.h) at the end of
// every interval and the ranks meet at a barrier after it; resume checks that all ranks loaded
// the same step, so a job killed between two ranks' writes is refused rather than mixed.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "routing/bias_controller.h"
#include "train/dataset.h"
#include "train/moe/moe_model.h"
#include "train/optimizer.h"

namespace tamoe::train::moe {

struct TrainConfig {
  int epochs = 3;
  int batch = 64;  // per rank
  double lr = 2e-3;
  uint64_t seed = 1;
  int interval = 50;       // steps between reports and checkpoints
  std::string checkpoint;  // empty: none
  bool resume = false;
  double bias_rate = 1e-3;        // ta-bias: BiasController rate
  int eval_batch = 500;           // per rank
  int64_t stop_after_steps = -1;  // stop (after the checkpoint) once this many steps ran; tests
};

struct Metrics {
  double loss = 0, aux = 0, accuracy = 0;
  double share_on_rank = 0, share_in_node = 0, share_cross_node = 0, drop_share = 0;
  double kl_to_target = 0;  // mean over ranks and layers
  int64_t samples = 0, copies = 0, dropped = 0;
  PhaseTimes times;      // mean over ranks, seconds
  double allreduce = 0;  // seconds, mean over ranks
  double total = 0;      // wall seconds of the steps, mean over ranks
  nlohmann::json to_json() const;
};

struct IntervalReport {
  int64_t epoch = 0, step = 0, steps_total = 0, batches_per_epoch = 0;
  double elapsed_s = 0, eta_s = 0;
  Metrics m;
};

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
  double share_cross_node = 0, drop_share = 0;
};

// What a trainer does for the loop it shares with the other trainer (run_epochs in
// train/moe/train_metrics.h); each call on every rank at once.
class EpochSteps {
 public:
  virtual ~EpochSteps() = default;
  // Optimizer steps taken.
  virtual int64_t step() const = 0;
  // Loads this rank's checkpoint (the step count with it); sets the epoch and the batch to go on
  // from.
  virtual void restore(int64_t* epoch, int64_t* batch) = 0;
  // One optimizer step on (x, y), its sums added to the interval's and the run's; start_s: now_s()
  // before the batch was gathered.
  virtual void train_batch(const MatrixRf& x, const std::vector<int>& y, double start_s) = 0;
  // The interval's metrics over the ranks; its sums start again from 0.
  virtual Metrics end_interval() = 0;
  // Writes this rank's checkpoint with the epoch and batch a resume goes on from.
  virtual void save(int64_t epoch, int64_t batch) = 0;
  virtual EvalResult evaluate(const Dataset& data) = 0;
};

class Trainer : private EpochSteps {
 public:
  // targets: this rank's target over global experts (empty: uniform). The groups' world is the
  // expert-parallel and data-parallel group.
  Trainer(const TrainConfig& tc, const ModelConfig& mc, const route::ExpertLayout& layout,
          coll::AllToAll& a2a, const Dataset& train, const Dataset& test);

  // Trains (resuming first when asked); calls on_interval on every rank after each interval and
  // on_epoch after each epoch's evaluation. Returns false when stopped by stop_after_steps.
  bool run(const std::function<void(const IntervalReport&)>& on_interval,
           const std::function<void(int64_t epoch, const EvalResult&)>& on_epoch);
  // Collective: accuracy and loss on the whole set, sharded over the ranks.
  EvalResult evaluate(const Dataset& data) override;

  MoeClassifier& model() { return model_; }
  int64_t step() const override { return step_; }
  Metrics totals() const;  // over the whole run (this process's part of it)

 private:
  void save(int64_t epoch, int64_t batch) override;
  void restore(int64_t* epoch, int64_t* batch) override;
  void train_batch(const MatrixRf& x, const std::vector<int>& y, double start_s) override;
  Metrics end_interval() override;
  nlohmann::json config_json() const;

  TrainConfig tc_;
  ModelConfig mc_;
  route::ExpertLayout layout_;
  coll::AllToAll* a2a_;
  MPI_Comm comm_;
  int rank_ = 0, P_ = 1;
  const Dataset& train_;
  const Dataset& test_;
  MoeClassifier model_;
  std::unique_ptr<Adam> adam_;
  std::vector<route::BiasController> bias_;
  int64_t step_ = 0;
  // Sums of the current interval and of the run: loss, aux, correct, samples, then per-layer
  // stats (kept on rank / node / cross, dropped, copies, kl), then times.
  std::vector<double> acc_, run_acc_;
  int64_t acc_steps_ = 0;
  Metrics reduce(const std::vector<double>& acc);
  void accumulate_step(double loss, double aux, int64_t correct, int64_t samples, double t_step,
                       double t_allreduce);
};

}  // namespace tamoe::train::moe
