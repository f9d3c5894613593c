#include "train/moe/train_metrics.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace tamoe::train::moe {

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
