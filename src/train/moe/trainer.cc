#include "train/moe/trainer.h"

#include <mpi.h>

#include <chrono>
#include <cmath>

#include "routing/stats.h"
#include "runtime/error.h"
#include "train/allreduce_grads.h"
#include "train/checkpoint.h"
#include "train/loss.h"
#include "train/moe/train_metrics.h"

namespace tamoe::train::moe {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Adds one routing decision's counts to acc.
void add_routing(std::vector<double>& acc, const MoeLayer<float>& l, int rank) {
  add_routing_stats(acc, route::routing_stats(l.routing(), l.layout(), rank, l.config().target));
}

}  // namespace

nlohmann::json Metrics::to_json() const {
  return {{"loss", loss},
          {"aux", aux},
          {"accuracy", accuracy},
          {"share_on_rank", share_on_rank},
          {"share_in_node", share_in_node},
          {"share_cross_node", share_cross_node},
          {"drop_share", drop_share},
          {"kl_to_target", kl_to_target},
          {"samples", samples},
          {"copies", copies},
          {"dropped", dropped},
          {"time_s",
           {{"gate", times.gate},
            {"permute", times.permute},
            {"a2a", times.a2a},
            {"experts", times.experts},
            {"combine", times.combine},
            {"allreduce", allreduce},
            {"total", total}}}};
}

Trainer::Trainer(const TrainConfig& tc, const ModelConfig& mc, const route::ExpertLayout& layout,
                 coll::AllToAll& a2a, const Dataset& train, const Dataset& test)
    : tc_(tc),
      mc_(mc),
      layout_(layout),
      a2a_(&a2a),
      comm_(a2a.groups().world()),
      rank_(a2a.groups().rank()),
      P_(a2a.groups().size()),
      train_(train),
      test_(test),
      model_(mc, layout, a2a, tc.seed, a2a.groups().rank()) {
  TAMOE_CHECK_ARG(tc.epochs >= 1 && tc.batch >= 1 && tc.interval >= 1 && tc.eval_batch >= 1,
                  "TrainConfig", "epochs, batch, interval, eval_batch >= 1",
                  str(tc.epochs, ", ", tc.batch, ", ", tc.interval, ", ", tc.eval_batch));
  TAMOE_CHECK_ARG(train.features() == mc.in_features, "Trainer: training set",
                  str(mc.in_features, " features"), str(train.features()));
  AdamOptions ao;
  ao.lr = tc.lr;
  adam_ = std::make_unique<Adam>(model_.params(), ao);
  if (mc.moe.aux == AuxKind::ta_bias) {
    route::BiasControllerOptions bo;
    bo.rate = tc.bias_rate;
    for (size_t l = 0; l < model_.layers.size(); ++l)
      bias_.emplace_back(model_.layers[l]->config().target, bo);
  }
  acc_.assign(kAccSize, 0.0);
  run_acc_.assign(kAccSize, 0.0);
}

nlohmann::json Trainer::config_json() const {
  return moe::config_json(mc_, layout_, tc_, P_);
}

void Trainer::save(int64_t epoch, int64_t batch) {
  TrainState st;
  st.step = step_;
  st.epoch = epoch;
  st.batch = batch;
  st.extra = checkpoint_extra(config_json(), rank_, P_, bias_);
  save_checkpoint(str(tc_.checkpoint, ".rank", rank_), model_.params(), adam_.get(), st);
  TAMOE_CHECK_MPI(MPI_Barrier(comm_));
}

void Trainer::restore(int64_t* epoch, int64_t* batch) {
  const std::string path = str(tc_.checkpoint, ".rank", rank_);
  TrainState st = load_checkpoint(path, model_.params(), adam_.get());
  restore_checkpoint_extra(path, st, rank_, P_, comm_, bias_);
  for (size_t l = 0; l < bias_.size(); ++l) model_.layers[l]->set_bias(bias_[l].bias());
  step_ = st.step;
  *epoch = st.epoch;
  *batch = st.batch;
}

void Trainer::accumulate_step(double loss, double aux, int64_t correct, int64_t samples,
                              double t_step, double t_allreduce) {
  std::vector<double> a(kAccSize, 0.0);
  a[kLoss] = loss * static_cast<double>(samples);
  a[kAux] = aux;
  a[kCorrect] = static_cast<double>(correct);
  a[kSamples] = static_cast<double>(samples);
  PhaseTimes t;
  for (auto& l : model_.layers) {
    add_routing(a, *l, rank_);
    t += l->times();
    l->times() = PhaseTimes{};
  }
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

Metrics Trainer::reduce(const std::vector<double>& acc) {
  return reduce_metrics(acc, P_, comm_);
}

Metrics Trainer::totals() const {
  return const_cast<Trainer*>(this)->reduce(run_acc_);
}

bool Trainer::run(const std::function<void(const IntervalReport&)>& on_interval,
                  const std::function<void(int64_t, const EvalResult&)>& on_epoch) {
  BatchSampler sampler(train_.size(), tc_.batch, tc_.seed, rank_, P_);
  int64_t epoch = 0, first_batch = 0;
  if (tc_.resume) restore(&epoch, &first_batch);
  const int64_t per_epoch = sampler.batches();
  const int64_t steps_total = per_epoch * tc_.epochs;
  const int64_t start_step = step_;
  const double t_start = now_s();
  MatrixRf x;
  std::vector<int> y;
  const float expert_scale = 1.0f / static_cast<float>(P_);
  for (; epoch < tc_.epochs; ++epoch, first_batch = 0) {
    sampler.set_epoch(epoch);
    for (int64_t b = first_batch; b < per_epoch; ++b) {
      const double t0 = now_s();
      gather_batch(train_, sampler.batch(b), x, y);
      model_.params().zero_grad();
      const MatrixRf logits = model_.forward(x);
      const CrossEntropy<float> ce = softmax_cross_entropy(logits, y);
      model_.backward(ce.grad);
      const double t1 = now_s();
      allreduce_grads(model_.dense_params(), comm_);
      const double t_ar = now_s() - t1;
      for (const auto& e : model_.expert_params().entries()) e.param->grad *= expert_scale;
      adam_->step();
      for (size_t l = 0; l < bias_.size(); ++l) {
        bias_[l].update(model_.layers[l]->topk_counts());
        model_.layers[l]->set_bias(bias_[l].bias());
      }
      ++step_;
      accumulate_step(ce.loss, model_.aux_loss(), ce.correct, static_cast<int64_t>(y.size()),
                      now_s() - t0, t_ar);
      const bool stop = tc_.stop_after_steps >= 0 && step_ >= tc_.stop_after_steps;
      if (step_ % tc_.interval == 0 || b + 1 == per_epoch || stop) {
        IntervalReport r;
        r.epoch = epoch;
        r.step = step_;
        r.steps_total = steps_total;
        r.batches_per_epoch = per_epoch;
        r.elapsed_s = now_s() - t_start;
        const double rate =
            r.elapsed_s / static_cast<double>(std::max<int64_t>(1, step_ - start_step));
        r.eta_s = rate * static_cast<double>(steps_total - step_);
        r.m = reduce(acc_);
        acc_.assign(kAccSize, 0.0);
        if (!tc_.checkpoint.empty()) {
          const bool last = b + 1 == per_epoch;
          save(last ? epoch + 1 : epoch, last ? 0 : b + 1);
        }
        if (on_interval) on_interval(r);
      }
      if (stop) return false;
    }
    if (on_epoch) on_epoch(epoch, evaluate(test_));
  }
  return true;
}

EvalResult Trainer::evaluate(const Dataset& data) {
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
    const MatrixRf logits = model_.forward(x);
    if (!y.empty()) {
      const CrossEntropy<float> ce = softmax_cross_entropy(logits, y);
      a[kLoss] += ce.loss * static_cast<double>(y.size());
      a[kCorrect] += static_cast<double>(ce.correct);
      a[kSamples] += static_cast<double>(y.size());
    }
    for (auto& l : model_.layers) {
      add_routing(a, *l, rank_);
      l->times() = PhaseTimes{};
    }
  }
  return reduce_eval(a, comm_);
}

}  // namespace tamoe::train::moe
