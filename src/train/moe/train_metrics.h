// What the host trainer (moe::Trainer) and the GPU trainer (gpu::GpuTrainer) share: the checks of
// their arguments, the ta-bias controllers, the epoch loop (batches, intervals, checkpoints,
// evaluation after each epoch), the evaluation batches, the layout of their per-step metric sums
// and its reduction over ranks, the routing statistics added to them, the configuration written
// into checkpoints, and the checkpoint extras (ta-bias biases) with the checks made when a job
// resumes.
#pragma once

#include <mpi.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "routing/bias_controller.h"
#include "routing/stats.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/moe/trainer.h"

namespace tamoe::train::moe {

// Seconds on the steady clock.
double now_s();

// Checks a trainer's configuration and that the training set has the model's input features;
// `who` names the trainer in the messages ("Trainer", "GpuTrainer").
void check_train_args(const TrainConfig& tc, const ModelConfig& mc, const Dataset& train,
                      const std::string& who);

// One ta-bias controller per MoE layer, toward that layer's target; none for other aux kinds.
// Layers: a sequence of pointers to layers with config().target (MoeLayer, GpuMoeLayer).
template <class Layers>
std::vector<route::BiasController> bias_controllers(const TrainConfig& tc, const ModelConfig& mc,
                                                    const Layers& layers) {
  std::vector<route::BiasController> bias;
  if (mc.moe.aux != AuxKind::ta_bias) return bias;
  route::BiasControllerOptions bo;
  bo.rate = tc.bias_rate;
  for (const auto& l : layers) bias.emplace_back(l->config().target, bo);
  return bias;
}

// The loop of Trainer::run and GpuTrainer::run: tc.epochs epochs of this rank's batches of
// `train` (resuming first when tc.resume), a report (with a checkpoint when tc.checkpoint is set)
// every tc.interval steps, at the end of each epoch and at tc.stop_after_steps, an evaluation on
// `test` after each epoch. Returns false when stopped by stop_after_steps. Collective.
bool run_epochs(EpochSteps& t, const TrainConfig& tc, const Dataset& train, const Dataset& test,
                int rank, int ranks, const std::function<void(const IntervalReport&)>& on_interval,
                const std::function<void(int64_t epoch, const EvalResult&)>& on_epoch);

// This rank's evaluation batches of `data` (its shard, eval_batch rows at a time). Every rank
// gets as many batches as the rank with the most (collective), so that ranks with a shorter shard
// still join the collective MoE layers with 0 rows.
class EvalBatches {
 public:
  EvalBatches(const Dataset& data, int eval_batch, int rank, int ranks, MPI_Comm comm);
  // The next batch into (x, y): 0 rows of data's features once this rank's shard is spent.
  // False after the last batch.
  bool next(MatrixRf& x, std::vector<int>& y);

 private:
  const Dataset& data_;
  int64_t eval_batch_;
  std::vector<int64_t> idx_;
  int64_t batches_ = 0, b_ = 0;
};

// One training step's sums: `loss` is the mean over `samples`, `times` the layers' phase times,
// step_s and allreduce_s wall seconds. The layers' routing statistics are the caller's to add
// (add_routing_stats).
std::vector<double> step_sums(double loss, double aux, int64_t correct, int64_t samples,
                              const PhaseTimes& times, double step_s, double allreduce_s);

// Adds one step's sums to the interval's and the run's.
void add_step_sums(const std::vector<double>& step, std::vector<double>& acc,
                   std::vector<double>& run_acc);

// Per-rank sums of one interval (or run), reduced with MPI_SUM.
enum Acc : int {
  kLoss,
  kAux,
  kCorrect,
  kSamples,
  kOnRank,
  kInNode,
  kCross,
  kDropped,
  kCopies,
  kKl,
  kKlCount,
  kGate,
  kPermute,
  kA2a,
  kExperts,
  kCombine,
  kAllreduce,
  kTotal,
  kSteps,
  kAccSize
};

// Adds one layer's routing statistics (token-copies on rank / in node / across, drops, KL).
void add_routing_stats(std::vector<double>& acc, const route::RoutingStats& s);

// Sums `acc` over the ranks of `comm` (collective) and turns the sums into metrics; times are
// averaged over the `ranks` ranks.
Metrics reduce_metrics(const std::vector<double>& acc, int ranks, MPI_Comm comm);

// The same for an evaluation pass (loss, accuracy, cross-node share, drops).
EvalResult reduce_eval(const std::vector<double>& acc, MPI_Comm comm);

// The run's configuration as written into checkpoints and logs.
nlohmann::json config_json(const ModelConfig& mc, const route::ExpertLayout& layout,
                           const TrainConfig& tc, int ranks);

// This rank's checkpoint file: "<tc.checkpoint>.rank<r>".
std::string checkpoint_path(const TrainConfig& tc, int rank);

// A checkpoint's state: `step` steps taken, a resume goes on with batch `batch` of epoch `epoch`;
// extra: checkpoint_extra.
TrainState checkpoint_state(int64_t step, int64_t epoch, int64_t batch, nlohmann::json extra);

// Writes this rank's checkpoint (checkpoint_path) of `params`, `adam` and `st`, then waits for
// every rank's (collective).
void save_rank_checkpoint(const TrainConfig& tc, int rank, MPI_Comm comm,
                          const ParamRegistry& params, Adam* adam, const TrainState& st);

// Loads this rank's checkpoint (checkpoint_path) into `params` and `adam`, checks it against this
// job and restores `bias` (restore_checkpoint_extra; collective).
TrainState load_rank_checkpoint(const TrainConfig& tc, int rank, int ranks, MPI_Comm comm,
                                ParamRegistry& params, Adam* adam,
                                std::vector<route::BiasController>& bias);

// Checkpoint extras: config, rank, ranks and the ta-bias controllers' biases.
nlohmann::json checkpoint_extra(const nlohmann::json& config, int rank, int ranks,
                                const std::vector<route::BiasController>& bias);

// Checks a loaded checkpoint (`path`, for messages) against this job: the same number of ranks,
// and the same step on every rank of `comm` (collective); then restores `bias` from its extras.
void restore_checkpoint_extra(const std::string& path, const TrainState& st, int rank, int ranks,
                              MPI_Comm comm, std::vector<route::BiasController>& bias);

}  // namespace tamoe::train::moe
