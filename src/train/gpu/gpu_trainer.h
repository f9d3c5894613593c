// tamoe-train's loop on the GPU: the same batches, objective, metrics and reports as
// moe::Trainer (trainer.h), with the model, loss, gradient average (ncclAllReduce over the dense
// parameters) and Adam on the device. The host model is built first with the host code and the
// same seed, and its parameters are copied to the device, so both paths start equal.
//
// One GPU per rank (coll::NcclGroups binds rank i of a host to device i). Checkpoints have the
// host path's format and content (parameters, Adam moments and step, counters, ta-bias biases;
// copied to the host at each interval), so a run may resume on either device.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "routing/bias_controller.h"
#include "train/gpu/gpu_model.h"
#include "train/moe/trainer.h"

namespace tamoe::train::gpu {

struct StepResult {
  double loss = 0;  // mean cross-entropy of this rank's batch
  int64_t correct = 0;
};

class GpuTrainer : private moe::EpochSteps {
 public:
  // host_a2a builds the host model that initialises the parameters; dev_a2a moves the tokens.
  GpuTrainer(const moe::TrainConfig& tc, const moe::ModelConfig& mc,
             const route::ExpertLayout& layout, coll::AllToAll& host_a2a,
             coll::DeviceAllToAll& dev_a2a, const Dataset& train, const Dataset& test);
  ~GpuTrainer() override;

  // As moe::Trainer::run. Returns false when stopped by stop_after_steps.
  bool run(const std::function<void(const moe::IntervalReport&)>& on_interval,
           const std::function<void(int64_t epoch, const moe::EvalResult&)>& on_epoch);
  // Collective: accuracy and loss on the whole set, sharded over the ranks.
  moe::EvalResult evaluate(const Dataset& data) override;
  // Collective: one optimizer step on this rank's batch (x: rows x features, labels).
  StepResult train_step(const MatrixRf& x, const std::vector<int>& y);

  // The host model that initialised the parameters; it holds the values of the last checkpoint
  // written or read (call model().download_values(host_model().params()) for the current ones).
  moe::MoeClassifier& host_model() { return host_; }
  GpuClassifier& model() { return *model_; }
  GpuAdam& adam() { return *adam_; }
  int64_t step() const override { return step_; }
  moe::Metrics totals() const;

 private:
  moe::Metrics reduce(const std::vector<double>& acc) const;
  void save(int64_t epoch, int64_t batch) override;
  void restore(int64_t* epoch, int64_t* batch) override;
  void train_batch(const MatrixRf& x, const std::vector<int>& y, double start_s) override;
  moe::Metrics end_interval() override;
  nlohmann::json config_json() const;
  void accumulate(double loss, double aux, int64_t correct, int64_t samples, double t_step,
                  double t_allreduce);
  const float* upload_batch(const MatrixRf& x, const std::vector<int>& y, int classes);

  moe::TrainConfig tc_;
  moe::ModelConfig mc_;
  route::ExpertLayout layout_;
  coll::DeviceAllToAll* dev_a2a_;
  MPI_Comm comm_;
  int rank_ = 0, P_ = 1;
  const Dataset& train_;
  const Dataset& test_;
  moe::MoeClassifier host_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<GpuClassifier> model_;
  std::unique_ptr<GpuAdam> adam_;
  std::unique_ptr<Adam> host_adam_;  // holds the moments on their way to and from checkpoints
  std::vector<route::BiasController> bias_;
  int64_t step_ = 0;
  moe::PhaseTimes last_times_;  // the layers' phase times of the last train_step
  std::vector<double> acc_, run_acc_;
  cudaEvent_t ar_begin_ = nullptr, ar_end_ = nullptr;
  coll::DeviceBuffer x_, y_, loss_rows_, correct_, dlogits_;
};

}  // namespace tamoe::train::gpu
