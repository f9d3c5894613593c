#include "train/gpu/gpu_trainer.h"

#include <mpi.h>

#include "routing/stats.h"
#include "runtime/cuda_check.h"
#include "runtime/error.h"
#include "train/checkpoint.h"
#include "train/gpu/train_kernels.h"
#include "train/moe/train_metrics.h"

namespace tamoe::train::gpu {

namespace {

using enum moe::Acc;  // the metric sums' layout, shared with the host trainer

void add_routing(std::vector<double>& acc, const GpuMoeLayer& l, int rank) {
  moe::add_routing_stats(acc,
                         route::routing_stats(l.routing(), l.layout(), rank, l.config().target));
}

}  // namespace

GpuTrainer::GpuTrainer(const moe::TrainConfig& tc, const moe::ModelConfig& mc,
                       const route::ExpertLayout& layout, coll::AllToAll& host_a2a,
                       coll::DeviceAllToAll& dev_a2a, const Dataset& train, const Dataset& test)
    : tc_(tc),
      mc_(mc),
      layout_(layout),
      dev_a2a_(&dev_a2a),
      comm_(dev_a2a.groups().world()),
      rank_(dev_a2a.groups().rank()),
      P_(dev_a2a.groups().size()),
      train_(train),
      test_(test),
      host_(mc, layout, host_a2a, tc.seed, dev_a2a.groups().rank()) {
  moe::check_train_args(tc, mc, train, "GpuTrainer");
  TAMOE_CHECK_ARG(!tc.resume || !tc.checkpoint.empty(), "GpuTrainer: resume", "a checkpoint path",
                  "none");
  // The device of this rank was bound by NcclGroups::create.
  TAMOE_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  TAMOE_CHECK_CUDA(cudaEventCreate(&ar_begin_));
  TAMOE_CHECK_CUDA(cudaEventCreate(&ar_end_));
  model_ = std::make_unique<GpuClassifier>(host_, mc, layout, dev_a2a, stream_);
  AdamOptions ao;
  ao.lr = tc.lr;
  adam_ = std::make_unique<GpuAdam>(model_->numel(), ao, stream_);
  if (!tc.checkpoint.empty()) host_adam_ = std::make_unique<Adam>(host_.params(), ao);
  bias_ = moe::bias_controllers(tc, mc, model_->layers);
  acc_.assign(kAccSize, 0.0);
  run_acc_.assign(kAccSize, 0.0);
}

GpuTrainer::~GpuTrainer() {
  // The model's cuBLAS handle and buffers go before the stream they use.
  model_.reset();
  adam_.reset();
  if (ar_begin_) cudaEventDestroy(ar_begin_);
  if (ar_end_) cudaEventDestroy(ar_end_);
  if (stream_) cudaStreamDestroy(stream_);
}

const float* GpuTrainer::upload_batch(const MatrixRf& x, const std::vector<int>& y, int classes) {
  TAMOE_CHECK_ARG(static_cast<int64_t>(y.size()) == x.rows(), "GpuTrainer: labels",
                  str(x.rows(), " (one per row)"), str(y.size()));
  for (size_t i = 0; i < y.size(); ++i)
    if (y[i] < 0 || y[i] >= classes)
      fail(Status::invalid_argument, str("GpuTrainer: label of row ", i),
           str("a class in 0..", classes - 1), str(y[i]));
  auto* xd = typed<float>(x_, x.size());
  upload(xd, x.data(), static_cast<size_t>(x.size()) * sizeof(float), stream_);
  upload(typed<int32_t>(y_, static_cast<int64_t>(y.size())), y.data(), y.size() * sizeof(int32_t),
         stream_);
  return xd;
}

StepResult GpuTrainer::train_step(const MatrixRf& x, const std::vector<int>& y) {
  const int64_t rows = x.rows();
  const float* xd = upload_batch(x, y, mc_.classes);
  model_->zero_grad();
  const float* logits = model_->forward(xd, rows);
  auto* loss_rows = typed<double>(loss_rows_, rows);
  auto* correct = typed<int32_t>(correct_, rows);
  float* dlogits = typed<float>(dlogits_, rows * mc_.classes);
  TAMOE_CHECK_CUDA(softmax_cross_entropy(logits, static_cast<const int32_t*>(y_.get()), rows,
                                         mc_.classes, loss_rows, correct, dlogits, stream_));
  model_->backward(dlogits);
  TAMOE_CHECK_CUDA(cudaEventRecord(ar_begin_, stream_));
  if (P_ > 1 && model_->dense_numel() > 0)
    TAMOE_CHECK_NCCL(ncclAllReduce(model_->grads(), model_->grads(),
                                   static_cast<size_t>(model_->dense_numel()), ncclFloat, ncclSum,
                                   dev_a2a_->nccl().world(), stream_));
  TAMOE_CHECK_CUDA(cudaEventRecord(ar_end_, stream_));
  // Dense gradients were summed, expert gradients sum every rank's tokens: 1/P makes both the
  // gradient of the mean over ranks (as the host path's allreduce_grads + expert scale).
  adam_->step(model_->values(), model_->grads(), 1.0f / static_cast<float>(P_));
  const std::vector<double> lr = download_vector(loss_rows, rows, stream_);
  const std::vector<int32_t> cr = download_vector(correct, rows, stream_);
  StepResult r;
  for (int64_t i = 0; i < rows; ++i) {
    r.loss += lr[i];
    r.correct += cr[i];
  }
  if (rows > 0) r.loss /= static_cast<double>(rows);
  last_times_ = moe::PhaseTimes{};
  for (auto& l : model_->layers) l->collect_times(last_times_);
  for (size_t l = 0; l < bias_.size(); ++l) {
    bias_[l].update(model_->layers[l]->topk_counts());
    model_->layers[l]->set_bias(bias_[l].bias());
  }
  ++step_;
  return r;
}

void GpuTrainer::accumulate(double loss, double aux, int64_t correct, int64_t samples,
                            double t_step, double t_allreduce) {
  std::vector<double> a =
      moe::step_sums(loss, aux, correct, samples, last_times_, t_step, t_allreduce);
  for (auto& l : model_->layers) add_routing(a, *l, rank_);
  moe::add_step_sums(a, acc_, run_acc_);
}

moe::Metrics GpuTrainer::reduce(const std::vector<double>& acc) const {
  return moe::reduce_metrics(acc, P_, comm_);
}

moe::Metrics GpuTrainer::totals() const {
  return reduce(run_acc_);
}

nlohmann::json GpuTrainer::config_json() const {
  // The fields of moe::Trainer's checkpoint config, plus the device.
  nlohmann::json c = moe::config_json(mc_, layout_, tc_, P_);
  c["device"] = "gpu";
  return c;
}

// The Adam moments travel through host_adam_'s tensors ("m/<param>", "v/<param>").
void GpuTrainer::save(int64_t epoch, int64_t batch) {
  model_->download_values(host_.params());
  for (const NamedTensor& t : host_adam_->state()) {
    const bool m = t.name.rfind("m/", 0) == 0;
    model_->download_slice(m ? adam_->m() : adam_->v(), t.name.substr(2), *t.tensor);
  }
  host_adam_->set_steps(adam_->steps());
  moe::save_rank_checkpoint(
      tc_, rank_, comm_, host_.params(), host_adam_.get(),
      moe::checkpoint_state(step_, epoch, batch,
                            moe::checkpoint_extra(config_json(), rank_, P_, bias_)));
}

void GpuTrainer::restore(int64_t* epoch, int64_t* batch) {
  const TrainState st =
      moe::load_rank_checkpoint(tc_, rank_, P_, comm_, host_.params(), host_adam_.get(), bias_);
  for (size_t l = 0; l < bias_.size(); ++l) model_->layers[l]->set_bias(bias_[l].bias());
  model_->upload_values(host_.params());
  for (const NamedTensor& t : host_adam_->state()) {
    const bool m = t.name.rfind("m/", 0) == 0;
    model_->upload_slice(m ? adam_->m() : adam_->v(), t.name.substr(2), *t.tensor);
  }
  adam_->set_steps(host_adam_->steps());
  TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream_));
  step_ = st.step;
  *epoch = st.epoch;
  *batch = st.batch;
}

bool GpuTrainer::run(const std::function<void(const moe::IntervalReport&)>& on_interval,
                     const std::function<void(int64_t, const moe::EvalResult&)>& on_epoch) {
  return moe::run_epochs(*this, tc_, train_, test_, rank_, P_, on_interval, on_epoch);
}

void GpuTrainer::train_batch(const MatrixRf& x, const std::vector<int>& y, double start_s) {
  const StepResult r = train_step(x, y);
  float ar_ms = 0;
  TAMOE_CHECK_CUDA(cudaEventElapsedTime(&ar_ms, ar_begin_, ar_end_));
  accumulate(r.loss, model_->aux_loss(), r.correct, static_cast<int64_t>(y.size()),
             moe::now_s() - start_s, 1e-3 * ar_ms);
}

moe::Metrics GpuTrainer::end_interval() {
  const moe::Metrics m = reduce(acc_);
  acc_.assign(kAccSize, 0.0);
  return m;
}

moe::EvalResult GpuTrainer::evaluate(const Dataset& data) {
  moe::EvalBatches batches(data, tc_.eval_batch, rank_, P_, comm_);
  std::vector<double> a(kAccSize, 0.0);
  MatrixRf x;
  std::vector<int> y;
  while (batches.next(x, y)) {
    const int64_t rows = x.rows();
    const float* xd = upload_batch(x, y, mc_.classes);
    const float* logits = model_->forward(xd, rows);
    auto* loss_rows = typed<double>(loss_rows_, rows);
    auto* correct = typed<int32_t>(correct_, rows);
    TAMOE_CHECK_CUDA(softmax_cross_entropy(logits, static_cast<const int32_t*>(y_.get()), rows,
                                           mc_.classes, loss_rows, correct,
                                           typed<float>(dlogits_, rows * mc_.classes), stream_));
    const std::vector<double> lr = download_vector(loss_rows, rows, stream_);
    const std::vector<int32_t> cr = download_vector(correct, rows, stream_);
    for (int64_t i = 0; i < rows; ++i) {
      a[kLoss] += lr[i];
      a[kCorrect] += cr[i];
    }
    a[kSamples] += static_cast<double>(rows);
    moe::PhaseTimes unused;
    for (auto& l : model_->layers) {
      add_routing(a, *l, rank_);
      l->collect_times(unused);
    }
  }
  return moe::reduce_eval(a, comm_);
}

}  // namespace tamoe::train::gpu
