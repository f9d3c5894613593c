#include "train/gpu/gpu_trainer.h"

#include <mpi.h>

#include <chrono>
#include <cmath>

#include "routing/stats.h"
#include "runtime/cuda_check.h"
#include "runtime/error.h"
#include "train/checkpoint.h"
#include "train/gpu/train_kernels.h"
#include "train/moe/train_metrics.h"

namespace tamoe::train::gpu {

namespace {

using enum moe::Acc;  // the metric sums' layout, shared with the host trainer

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

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
  TAMOE_CHECK_ARG(tc.epochs >= 1 && tc.batch >= 1 && tc.interval >= 1 && tc.eval_batch >= 1,
                  "TrainConfig", "epochs, batch, interval, eval_batch >= 1",
                  str(tc.epochs, ", ", tc.batch, ", ", tc.interval, ", ", tc.eval_batch));
  TAMOE_CHECK_ARG(train.features() == mc.in_features, "GpuTrainer: training set",
                  str(mc.in_features, " features"), str(train.features()));
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
  if (mc.moe.aux == moe::AuxKind::ta_bias) {
    route::BiasControllerOptions bo;
    bo.rate = tc.bias_rate;
    for (size_t l = 0; l < model_->layers.size(); ++l)
      bias_.emplace_back(model_->layers[l]->config().target, bo);
  }
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
  std::vector<double> a(kAccSize, 0.0);
  a[kLoss] = loss * static_cast<double>(samples);
  a[kAux] = aux;
  a[kCorrect] = static_cast<double>(correct);
  a[kSamples] = static_cast<double>(samples);
  const moe::PhaseTimes& t = last_times_;
  for (auto& l : model_->layers) add_routing(a, *l, rank_);
  a[kGate] = t.gate;
  a[kPermute] = t.permute;
  a[kA2a] = t.a2a;
  a[kExperts] = t.experts;
  a[kCombine] = t.combine;
  a[kAllreduce] = t_allreduce;
  a[kTotal] = t_step;
  a[kSteps] = 1;
  for (int i = 0; i < kAccSize; ++i) {
    acc_[i] += a[i];
    run_acc_[i] += a[i];
  }
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
  TrainState st;
  st.step = step_;
  st.epoch = epoch;
  st.batch = batch;
  st.extra = moe::checkpoint_extra(config_json(), rank_, P_, bias_);
  save_checkpoint(str(tc_.checkpoint, ".rank", rank_), host_.params(), host_adam_.get(), st);
  TAMOE_CHECK_MPI(MPI_Barrier(comm_));
}

void GpuTrainer::restore(int64_t* epoch, int64_t* batch) {
  const std::string path = str(tc_.checkpoint, ".rank", rank_);
  TrainState st = load_checkpoint(path, host_.params(), host_adam_.get());
  moe::restore_checkpoint_extra(path, st, rank_, P_, comm_, bias_);
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
  BatchSampler sampler(train_.size(), tc_.batch, tc_.seed, rank_, P_);
  int64_t epoch = 0, first_batch = 0;
  if (tc_.resume) restore(&epoch, &first_batch);
  const int64_t per_epoch = sampler.batches();
  const int64_t steps_total = per_epoch * tc_.epochs;
  const int64_t start_step = step_;
  const double t_start = now_s();
  MatrixRf x;
  std::vector<int> y;
  for (; epoch < tc_.epochs; ++epoch, first_batch = 0) {
    sampler.set_epoch(epoch);
    for (int64_t b = first_batch; b < per_epoch; ++b) {
      const double t0 = now_s();
      gather_batch(train_, sampler.batch(b), x, y);
      const StepResult r = train_step(x, y);
      float ar_ms = 0;
      TAMOE_CHECK_CUDA(cudaEventElapsedTime(&ar_ms, ar_begin_, ar_end_));
      accumulate(r.loss, model_->aux_loss(), r.correct, static_cast<int64_t>(y.size()),
                 now_s() - t0, 1e-3 * ar_ms);
      const bool stop = tc_.stop_after_steps >= 0 && step_ >= tc_.stop_after_steps;
      if (step_ % tc_.interval == 0 || b + 1 == per_epoch || stop) {
        moe::IntervalReport rep;
        rep.epoch = epoch;
        rep.step = step_;
        rep.steps_total = steps_total;
        rep.batches_per_epoch = per_epoch;
        rep.elapsed_s = now_s() - t_start;
        rep.eta_s = rep.elapsed_s / static_cast<double>(std::max<int64_t>(1, step_ - start_step)) *
                    static_cast<double>(steps_total - step_);
        rep.m = reduce(acc_);
        acc_.assign(kAccSize, 0.0);
        if (!tc_.checkpoint.empty()) {
          const bool last = b + 1 == per_epoch;
          save(last ? epoch + 1 : epoch, last ? 0 : b + 1);
        }
        if (on_interval) on_interval(rep);
      }
      if (stop) return false;
    }
    if (on_epoch) on_epoch(epoch, evaluate(test_));
  }
  return true;
}

moe::EvalResult GpuTrainer::evaluate(const Dataset& data) {
  const std::vector<int64_t> idx = shard_indices(data.size(), rank_, P_);
  const int64_t n = static_cast<int64_t>(idx.size());
  int64_t batches = (n + tc_.eval_batch - 1) / tc_.eval_batch, max_batches = 0;
  TAMOE_CHECK_MPI(MPI_Allreduce(&batches, &max_batches, 1, MPI_INT64_T, MPI_MAX, comm_));
  std::vector<double> a(kAccSize, 0.0);
  MatrixRf x;
  std::vector<int> y;
  for (int64_t b = 0; b < max_batches; ++b) {
    // Ranks with a shorter shard still join the collective MoE layers with 0 rows.
    const int64_t lo = std::min(n, b * tc_.eval_batch);
    const int64_t hi = std::min(n, lo + tc_.eval_batch);
    gather_batch(data, std::span<const int64_t>(idx.data() + lo, static_cast<size_t>(hi - lo)), x,
                 y);
    if (x.rows() == 0) x.resize(0, data.features());
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
