#include "train/moe/trainer.h"

#include <mpi.h>

#include "routing/stats.h"
#include "train/allreduce_grads.h"
#include "train/checkpoint.h"
#include "train/loss.h"
#include "train/moe/train_metrics.h"

namespace tamoe::train::moe {

namespace {

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
  check_train_args(tc, mc, train, "Trainer");
  AdamOptions ao;
  ao.lr = tc.lr;
  adam_ = std::make_unique<Adam>(model_.params(), ao);
  bias_ = bias_controllers(tc, mc, model_.layers);
  acc_.assign(kAccSize, 0.0);
  run_acc_.assign(kAccSize, 0.0);
}

nlohmann::json Trainer::config_json() const {
  return moe::config_json(mc_, layout_, tc_, P_);
}

void Trainer::save(int64_t epoch, int64_t batch) {
  save_rank_checkpoint(
      tc_, rank_, comm_, model_.params(), adam_.get(),
      checkpoint_state(step_, epoch, batch, checkpoint_extra(config_json(), rank_, P_, bias_)));
}

void Trainer::restore(int64_t* epoch, int64_t* batch) {
  const TrainState st =
      load_rank_checkpoint(tc_, rank_, P_, comm_, model_.params(), adam_.get(), bias_);
  for (size_t l = 0; l < bias_.size(); ++l) model_.layers[l]->set_bias(bias_[l].bias());
  step_ = st.step;
  *epoch = st.epoch;
  *batch = st.batch;
}

void Trainer::accumulate_step(double loss, double aux, int64_t correct, int64_t samples,
                              double t_step, double t_allreduce) {
  PhaseTimes t;
  for (auto& l : model_.layers) {
    t += l->times();
    l->times() = PhaseTimes{};
  }
  std::vector<double> a = step_sums(loss, aux, correct, samples, t, t_step, t_allreduce);
  for (auto& l : model_.layers) add_routing(a, *l, rank_);
  add_step_sums(a, acc_, run_acc_);
}

Metrics Trainer::reduce(const std::vector<double>& acc) {
  return reduce_metrics(acc, P_, comm_);
}

Metrics Trainer::totals() const {
  return const_cast<Trainer*>(this)->reduce(run_acc_);
}

bool Trainer::run(const std::function<void(const IntervalReport&)>& on_interval,
                  const std::function<void(int64_t, const EvalResult&)>& on_epoch) {
  return run_epochs(*this, tc_, train_, test_, rank_, P_, on_interval, on_epoch);
}

void Trainer::train_batch(const MatrixRf& x, const std::vector<int>& y, double start_s) {
  model_.params().zero_grad();
  const MatrixRf logits = model_.forward(x);
  const CrossEntropy<float> ce = softmax_cross_entropy(logits, y);
  model_.backward(ce.grad);
  const double t1 = now_s();
  allreduce_grads(model_.dense_params(), comm_);
  const double t_ar = now_s() - t1;
  const float expert_scale = 1.0f / static_cast<float>(P_);
  for (const auto& e : model_.expert_params().entries()) e.param->grad *= expert_scale;
  adam_->step();
  for (size_t l = 0; l < bias_.size(); ++l) {
    bias_[l].update(model_.layers[l]->topk_counts());
    model_.layers[l]->set_bias(bias_[l].bias());
  }
  ++step_;
  accumulate_step(ce.loss, model_.aux_loss(), ce.correct, static_cast<int64_t>(y.size()),
                  now_s() - start_s, t_ar);
}

Metrics Trainer::end_interval() {
  const Metrics m = reduce(acc_);
  acc_.assign(kAccSize, 0.0);
  return m;
}

EvalResult Trainer::evaluate(const Dataset& data) {
  EvalBatches batches(data, tc_.eval_batch, rank_, P_, comm_);
  std::vector<double> a(kAccSize, 0.0);
  MatrixRf x;
  std::vector<int> y;
  while (batches.next(x, y)) {
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
