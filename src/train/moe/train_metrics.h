// What the host trainer (moe::Trainer) and the GPU trainer (gpu::GpuTrainer) share: the layout of
// their per-step metric sums and its reduction over ranks, the routing statistics added to them,
// the configuration written into checkpoints, and the checkpoint extras (ta-bias biases) with the
// checks made when a job resumes.
#pragma once

#include <mpi.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "routing/bias_controller.h"
#include "routing/stats.h"
#include "train/checkpoint.h"
#include "train/moe/trainer.h"

namespace tamoe::train::moe {

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

// Checkpoint extras: config, rank, ranks and the ta-bias controllers' biases.
nlohmann::json checkpoint_extra(const nlohmann::json& config, int rank, int ranks,
                                const std::vector<route::BiasController>& bias);

// Checks a loaded checkpoint (`path`, for messages) against this job: the same number of ranks,
// and the same step on every rank of `comm` (collective); then restores `bias` from its extras.
void restore_checkpoint_extra(const std::string& path, const TrainState& st, int rank, int ranks,
                              MPI_Comm comm, std::vector<route::BiasController>& bias);

}  // namespace tamoe::train::moe
