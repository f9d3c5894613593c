#include "train/moe/train_metrics.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>
#include <utility>

#include "runtime/error.h"

namespace tamoe::train::moe {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void check_train_args(const TrainConfig& tc, const ModelConfig& mc, const Dataset& train,
                      const std::string& who) {
  TAMOE_CHECK_ARG(tc.epochs >= 1 && tc.batch >= 1 && tc.interval >= 1 && tc.eval_batch >= 1,
                  "TrainConfig", "epochs, batch, interval, eval_batch >= 1",
                  str(tc.epochs, ", ", tc.batch, ", ", tc.interval, ", ", tc.eval_batch));
  TAMOE_CHECK_ARG(train.features() == mc.in_features, who + ": training set",
                  str(mc.in_features, " features"), str(train.features()));
}

bool run_epochs(EpochSteps& t, const TrainConfig& tc, const Dataset& train, const Dataset& test,
                int rank, int ranks, const std::function<void(const IntervalReport&)>& on_interval,
                const std::function<void(int64_t epoch, const EvalResult&)>& on_epoch) {
  BatchSampler sampler(train.size(), tc.batch, tc.seed, rank, ranks);
  int64_t epoch = 0, first_batch = 0;
  if (tc.resume) t.restore(&epoch, &first_batch);
  const int64_t per_epoch = sampler.batches();
  const int64_t steps_total = per_epoch * tc.epochs;
  const int64_t start_step = t.step();
  const double t_start = now_s();
  MatrixRf x;
  std::vector<int> y;
  for (; epoch < tc.epochs; ++epoch, first_batch = 0) {
    sampler.set_epoch(epoch);
    for (int64_t b = first_batch; b < per_epoch; ++b) {
      const double t0 = now_s();
      gather_batch(train, sampler.batch(b), x, y);
      t.train_batch(x, y, t0);
      const int64_t step = t.step();
      const bool stop = tc.stop_after_steps >= 0 && step >= tc.stop_after_steps;
      if (step % tc.interval == 0 || b + 1 == per_epoch || stop) {
        IntervalReport r;
        r.epoch = epoch;
        r.step = step;
        r.steps_total = steps_total;
        r.batches_per_epoch = per_epoch;
        r.elapsed_s = now_s() - t_start;
        const double rate =
            r.elapsed_s / static_cast<double>(std::max<int64_t>(1, step - start_step));
        r.eta_s = rate * static_cast<double>(steps_total - step);
        r.m = t.end_interval();
        if (!tc.checkpoint.empty()) {
          const bool last = b + 1 == per_epoch;
          t.save(last ? epoch + 1 : epoch, last ? 0 : b + 1);
        }
        if (on_interval) on_interval(r);
      }
      if (stop) return false;
    }
    if (on_epoch) on_epoch(epoch, t.evaluate(test));
  }
  return true;
}

EvalBatches::EvalBatches(const Dataset& data, int eval_batch, int rank, int ranks, MPI_Comm comm)
    : data_(data), eval_batch_(eval_batch), idx_(shard_indices(data.size(), rank, ranks)) {
  const int64_t n = static_cast<int64_t>(idx_.size());
  const int64_t batches = (n + eval_batch_ - 1) / eval_batch_;
  TAMOE_CHECK_MPI(MPI_Allreduce(&batches, &batches_, 1, MPI_INT64_T, MPI_MAX, comm));
}

bool EvalBatches::next(MatrixRf& x, std::vector<int>& y) {
  if (b_ >= batches_) return false;
  const int64_t n = static_cast<int64_t>(idx_.size());
  const int64_t lo = std::min(n, b_ * eval_batch_);
  const int64_t hi = std::min(n, lo + eval_batch_);
  gather_batch(data_, std::span<const int64_t>(idx_.data() + lo, static_cast<size_t>(hi - lo)), x,
               y);
  if (x.rows() == 0) x.resize(0, data_.features());
  ++b_;
  return true;
}

std::vector<double> step_sums(double loss, double aux, int64_t correct, int64_t samples,
                              const PhaseTimes& times, double step_s, double allreduce_s) {
  std::vector<double> a(kAccSize, 0.0);
  a[kLoss] = loss * static_cast<double>(samples);
  a[kAux] = aux;
  a[kCorrect] = static_cast<double>(correct);
  a[kSamples] = static_cast<double>(samples);
  a[kGate] = times.gate;
  a[kPermute] = times.permute;
  a[kA2a] = times.a2a;
  a[kExperts] = times.experts;
  a[kCombine] = times.combine;
  a[kAllreduce] = allreduce_s;
  a[kTotal] = step_s;
  a[kSteps] = 1;
  return a;
}

void add_step_sums(const std::vector<double>& step, std::vector<double>& acc,
                   std::vector<double>& run_acc) {
  for (int i = 0; i < kAccSize; ++i) {
    acc[i] += step[i];
    run_acc[i] += step[i];
  }
}

void add_routing_stats(std::vector<double>& acc, const route::RoutingStats& s) {
  acc[kOnRank] += s.share_on_rank * static_cast<double>(s.kept);
  acc[kInNode] += s.share_in_node * static_cast<double>(s.kept);
  acc[kCross] += s.share_cross_node * static_cast<double>(s.kept);
  acc[kDropped] += static_cast<double>(s.dropped);
  acc[kCopies] += static_cast<double>(s.copies);
  if (std::isfinite(s.kl_to_target)) {
    acc[kKl] += s.kl_to_target;
    acc[kKlCount] += 1;
  }
}

Metrics reduce_metrics(const std::vector<double>& acc, int ranks, MPI_Comm comm) {
  std::vector<double> s(kAccSize);
  TAMOE_CHECK_MPI(MPI_Allreduce(acc.data(), s.data(), kAccSize, MPI_DOUBLE, MPI_SUM, comm));
  Metrics m;
  const double samples = std::max(1.0, s[kSamples]);
  const double kept = std::max(1.0, s[kOnRank] + s[kInNode] + s[kCross]);
  const double P = ranks;
  m.loss = s[kLoss] / samples;
  m.aux = s[kAux] / std::max(1.0, s[kSteps]);
  m.accuracy = s[kCorrect] / samples;
  m.share_on_rank = s[kOnRank] / kept;
  m.share_in_node = s[kInNode] / kept;
  m.share_cross_node = s[kCross] / kept;
  m.drop_share = s[kDropped] / std::max(1.0, s[kCopies]);
  m.kl_to_target = s[kKl] / std::max(1.0, s[kKlCount]);
  m.samples = static_cast<int64_t>(s[kSamples]);
  m.copies = static_cast<int64_t>(s[kCopies]);
  m.dropped = static_cast<int64_t>(s[kDropped]);
  m.times = {s[kGate] / P, s[kPermute] / P, s[kA2a] / P, s[kExperts] / P, s[kCombine] / P};
  m.allreduce = s[kAllreduce] / P;
  m.total = s[kTotal] / P;
  return m;
}

EvalResult reduce_eval(const std::vector<double>& acc, MPI_Comm comm) {
  std::vector<double> s(kAccSize);
  TAMOE_CHECK_MPI(MPI_Allreduce(acc.data(), s.data(), kAccSize, MPI_DOUBLE, MPI_SUM, comm));
  EvalResult r;
  r.samples = static_cast<int64_t>(s[kSamples]);
  r.loss = s[kLoss] / std::max(1.0, s[kSamples]);
  r.accuracy = s[kCorrect] / std::max(1.0, s[kSamples]);
  r.share_cross_node = s[kCross] / std::max(1.0, s[kOnRank] + s[kInNode] + s[kCross]);
  r.drop_share = s[kDropped] / std::max(1.0, s[kCopies]);
  return r;
}

nlohmann::json config_json(const ModelConfig& mc, const route::ExpertLayout& layout,
                           const TrainConfig& tc, int ranks) {
  return {{"ranks", ranks},
          {"experts_per_rank", layout.experts_per_rank},
          {"nodes", layout.num_nodes()},
          {"layers", mc.layers},
          {"hidden", mc.moe.hidden},
          {"ffn_hidden", mc.moe.ffn_hidden},
          {"top_k", mc.moe.gate.k},
          {"aux", aux_name(mc.moe.aux)},
          {"aux_weight", mc.moe.aux_weight},
          {"capacity_factor", mc.moe.gate.capacity_factor},
          {"node_limit", mc.moe.gate.max_nodes},
          {"batch", tc.batch},
          {"lr", tc.lr},
          {"seed", tc.seed},
          {"interval", tc.interval}};
}

std::string checkpoint_path(const TrainConfig& tc, int rank) {
  return str(tc.checkpoint, ".rank", rank);
}

TrainState checkpoint_state(int64_t step, int64_t epoch, int64_t batch, nlohmann::json extra) {
  TrainState st;
  st.step = step;
  st.epoch = epoch;
  st.batch = batch;
  st.extra = std::move(extra);
  return st;
}

void save_rank_checkpoint(const TrainConfig& tc, int rank, MPI_Comm comm,
                          const ParamRegistry& params, Adam* adam, const TrainState& st) {
  save_checkpoint(checkpoint_path(tc, rank), params, adam, st);
  TAMOE_CHECK_MPI(MPI_Barrier(comm));
}

TrainState load_rank_checkpoint(const TrainConfig& tc, int rank, int ranks, MPI_Comm comm,
                                ParamRegistry& params, Adam* adam,
                                std::vector<route::BiasController>& bias) {
  const std::string path = checkpoint_path(tc, rank);
  TrainState st = load_checkpoint(path, params, adam);
  restore_checkpoint_extra(path, st, rank, ranks, comm, bias);
  return st;
}

nlohmann::json checkpoint_extra(const nlohmann::json& config, int rank, int ranks,
                                const std::vector<route::BiasController>& bias) {
  nlohmann::json biases = nlohmann::json::array();
  for (const auto& b : bias) {
    const Eigen::VectorXd v = b.bias_double();
    biases.push_back(std::vector<double>(v.data(), v.data() + v.size()));
  }
  return {{"config", config}, {"rank", rank}, {"ranks", ranks}, {"bias", biases}};
}

void restore_checkpoint_extra(const std::string& path, const TrainState& st, int rank, int ranks,
                              MPI_Comm comm, std::vector<route::BiasController>& bias) {
  const int saved_ranks = st.extra.value("ranks", -1);
  TAMOE_CHECK_ARG(saved_ranks == ranks, path + ": extra.ranks", str(ranks, " (this job)"),
                  str(saved_ranks));
  int64_t lo = 0, hi = 0;
  TAMOE_CHECK_MPI(MPI_Allreduce(&st.step, &lo, 1, MPI_INT64_T, MPI_MIN, comm));
  TAMOE_CHECK_MPI(MPI_Allreduce(&st.step, &hi, 1, MPI_INT64_T, MPI_MAX, comm));
  if (lo != hi)
    fail(Status::invalid_input, path + ": step", "the same step on every rank",
         str("steps from ", lo, " to ", hi, " (rank ", rank, ": ", st.step,
             "); the job died between two ranks' checkpoints"));
  const auto& biases = st.extra.at("bias");
  TAMOE_CHECK_ARG(biases.size() == bias.size(), path + ": extra.bias",
                  str(bias.size(), " bias vectors"), str(biases.size()));
  for (size_t l = 0; l < bias.size(); ++l) {
    const std::vector<double> v = biases[l].get<std::vector<double>>();
    bias[l].set_bias(
        Eigen::Map<const Eigen::VectorXd>(v.data(), static_cast<Eigen::Index>(v.size())));
  }
}

}  // namespace tamoe::train::moe
