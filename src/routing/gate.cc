#include "routing/gate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/error.h"

namespace tamoe::route {

namespace {

constexpr const char* kWhere = "route";

// Scores of one token in double; the combine weights come from these.
void token_scores(const float* logits, int n, ScoreFn fn, std::vector<double>& out) {
  out.resize(n);
  if (fn == ScoreFn::sigmoid) {
    for (int e = 0; e < n; ++e) out[e] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[e])));
    return;
  }
  double mx = -INFINITY;
  for (int e = 0; e < n; ++e) mx = std::max(mx, static_cast<double>(logits[e]));
  double sum = 0;
  for (int e = 0; e < n; ++e) {
    out[e] = std::exp(static_cast<double>(logits[e]) - mx);
    sum += out[e];
  }
  for (int e = 0; e < n; ++e) out[e] /= sum;
}

// Marks the experts on the token's allowed nodes (all of them without a node limit).
void allowed_experts(const std::vector<float>& keys, const ExpertLayout& layout,
                     const GateOptions& opt, std::vector<uint8_t>& allowed) {
  const int n = layout.num_experts();
  const int nodes = layout.num_nodes();
  allowed.assign(n, 1);
  if (opt.max_nodes <= 0 || opt.max_nodes >= nodes) return;
  // Group score: float sum of the node's top-g keys, from 0 in descending order.
  std::vector<float> group(nodes, 0.0f);
  std::vector<float> node_keys;
  for (int node = 0; node < nodes; ++node) {
    node_keys.clear();
    for (int e = 0; e < n; ++e)
      if (layout.node_of_expert(e) == node) node_keys.push_back(keys[e]);
    std::sort(node_keys.begin(), node_keys.end(), std::greater<float>());
    const int g = std::min<int>(opt.node_score_top, static_cast<int>(node_keys.size()));
    float s = 0.0f;
    for (int i = 0; i < g; ++i) s += node_keys[i];
    group[node] = s;
  }
  std::vector<uint8_t> node_ok(nodes, 0);
  for (int m = 0; m < opt.max_nodes; ++m) {
    int best = -1;
    for (int node = 0; node < nodes; ++node)
      if (!node_ok[node] && (best < 0 || group[node] > group[best])) best = node;
    node_ok[best] = 1;
  }
  for (int e = 0; e < n; ++e) allowed[e] = node_ok[layout.node_of_expert(e)];
}

void check_bias(const Eigen::VectorXf& bias, int n) {
  if (bias.size() == 0) return;
  if (bias.size() != n)
    fail(Status::invalid_argument, "route: bias", str("size ", n, " (one per global expert)"),
         str("size ", bias.size()));
  for (int e = 0; e < n; ++e)
    if (!std::isfinite(bias[e]))
      fail(Status::invalid_argument, "route: bias", "finite values",
           str(bias[e], " at expert ", e));
}

}  // namespace

int ExpertLayout::num_nodes() const {
  int m = -1;
  for (int v : node_of_rank) m = std::max(m, v);
  return m + 1;
}

ExpertLayout ExpertLayout::regular(int ranks, int experts_per_rank, int ranks_per_node) {
  TAMOE_CHECK_ARG(ranks_per_node >= 1, "ExpertLayout::regular: ranks_per_node", "at least 1",
                  str(ranks_per_node));
  ExpertLayout l;
  l.experts_per_rank = experts_per_rank;
  for (int r = 0; r < ranks; ++r) l.node_of_rank.push_back(r / ranks_per_node);
  validate(l);
  return l;
}

void validate(const ExpertLayout& layout) {
  TAMOE_CHECK_ARG(layout.experts_per_rank >= 1, "ExpertLayout.experts_per_rank", "at least 1",
                  str(layout.experts_per_rank));
  TAMOE_CHECK_ARG(layout.num_ranks() >= 1, "ExpertLayout.node_of_rank", "at least one rank",
                  "an empty vector");
  std::vector<int> seen(layout.num_ranks() + 1, 0);
  for (int r = 0; r < layout.num_ranks(); ++r) {
    const int node = layout.node_of_rank[r];
    TAMOE_CHECK_ARG(node >= 0 && node < layout.num_ranks(),
                    str("ExpertLayout.node_of_rank[", r, "]"),
                    str("a node id in 0..", layout.num_ranks() - 1), str(node));
    seen[node] = 1;
  }
  for (int node = 0; node < layout.num_nodes(); ++node)
    TAMOE_CHECK_ARG(seen[node], "ExpertLayout.node_of_rank",
                    str("node ids without gaps 0..", layout.num_nodes() - 1),
                    str("no rank on node ", node));
}

void validate(const GateOptions& opt, const ExpertLayout& layout) {
  validate(layout);
  const int n = layout.num_experts();
  TAMOE_CHECK_ARG(opt.k >= 1 && opt.k <= n, "GateOptions.k", str("1..", n, " (expert count)"),
                  str(opt.k));
  TAMOE_CHECK_ARG(opt.max_nodes >= 0, "GateOptions.max_nodes", "0 (off) or a positive count",
                  str(opt.max_nodes));
  TAMOE_CHECK_ARG(opt.node_score_top >= 1, "GateOptions.node_score_top", "at least 1",
                  str(opt.node_score_top));
  if (opt.max_nodes > 0 && opt.max_nodes < layout.num_nodes()) {
    // Every choice of max_nodes nodes must hold at least k experts.
    std::vector<int> per_node(layout.num_nodes(), 0);
    for (int r = 0; r < layout.num_ranks(); ++r)
      per_node[layout.node_of_rank[r]] += layout.experts_per_rank;
    std::sort(per_node.begin(), per_node.end());
    const int least = std::accumulate(per_node.begin(), per_node.begin() + opt.max_nodes, 0);
    TAMOE_CHECK_ARG(least >= opt.k, "GateOptions.max_nodes",
                    str("enough nodes that any ", opt.max_nodes, " hold k=", opt.k, " experts"),
                    str("only ", least, " experts on the smallest ", opt.max_nodes, " nodes"));
  }
  if (opt.overflow != Overflow::dropless) {
    if (!opt.capacity_per_rank.empty()) {
      TAMOE_CHECK_ARG(static_cast<int>(opt.capacity_per_rank.size()) == layout.num_ranks(),
                      "GateOptions.capacity_per_rank", str("size ", layout.num_ranks()),
                      str("size ", opt.capacity_per_rank.size()));
      for (size_t r = 0; r < opt.capacity_per_rank.size(); ++r)
        TAMOE_CHECK_ARG(opt.capacity_per_rank[r] >= 0,
                        str("GateOptions.capacity_per_rank[", r, "]"), "a non-negative count",
                        str(opt.capacity_per_rank[r]));
    } else {
      TAMOE_CHECK_ARG(opt.capacity_factor >= 0 && std::isfinite(opt.capacity_factor),
                      "GateOptions.capacity_factor", "a finite value >= 0",
                      str(opt.capacity_factor));
    }
  }
}

std::vector<int64_t> uniform_capacity(int64_t tokens, int k, int ranks, double cf) {
  TAMOE_CHECK_ARG(ranks >= 1, "uniform_capacity: ranks", "at least 1", str(ranks));
  TAMOE_CHECK_ARG(cf >= 0 && std::isfinite(cf), "uniform_capacity: capacity_factor",
                  "a finite value >= 0", str(cf));
  const auto c = static_cast<int64_t>(std::ceil(cf * static_cast<double>(tokens) * k / ranks));
  return std::vector<int64_t>(ranks, c);
}

std::vector<int64_t> capacity_from_plan(const std::vector<double>& row, int64_t tokens, int k,
                                        double cf) {
  std::vector<int64_t> c(row.size());
  for (size_t j = 0; j < row.size(); ++j) {
    TAMOE_CHECK_ARG(row[j] >= 0 && row[j] <= 1 + 1e-9, str("capacity_from_plan: plan_row[", j, "]"),
                    "a share in [0, 1]", str(row[j]));
    // The 1e-9 slack keeps a share like 0.25 * 1024 * 2 from rounding up to one copy more.
    c[j] = static_cast<int64_t>(std::ceil(cf * static_cast<double>(tokens) * k * row[j] - 1e-9));
  }
  return c;
}

std::vector<int64_t> effective_capacity(const GateOptions& opt, int64_t tokens, int ranks) {
  if (opt.overflow == Overflow::dropless) return std::vector<int64_t>(ranks, -1);
  if (!opt.capacity_per_rank.empty()) return opt.capacity_per_rank;
  return uniform_capacity(tokens, opt.k, ranks, opt.capacity_factor);
}

void check_finite(const MatrixRf& logits, const char* where) {
  for (Eigen::Index t = 0; t < logits.rows(); ++t)
    for (Eigen::Index e = 0; e < logits.cols(); ++e)
      if (!std::isfinite(logits(t, e)))
        fail(Status::invalid_argument, str(where, ": logits"), "finite values",
             str(logits(t, e), " at token ", t, ", expert ", e));
}

TopK select_topk(const MatrixRf& logits, const Eigen::VectorXf& bias, const ExpertLayout& layout,
                 const GateOptions& opt) {
  validate(opt, layout);
  const int n = layout.num_experts();
  TAMOE_CHECK_ARG(logits.cols() == n, "route: logits", str(n, " columns (P*E experts)"),
                  str(logits.cols(), " columns"));
  check_bias(bias, n);
  check_finite(logits, kWhere);
  const Eigen::Index s = logits.rows();
  const int k = opt.k;
  TopK out;
  out.expert.resize(s, k);
  out.score.resize(s, k);
  out.expert_count.assign(n, 0);
  std::vector<float> keys(n);
  std::vector<uint8_t> allowed, taken;
  std::vector<double> scores;
  for (Eigen::Index t = 0; t < s; ++t) {
    const float* row = logits.data() + t * n;
    for (int e = 0; e < n; ++e) keys[e] = bias.size() ? row[e] + bias[e] : row[e];
    allowed_experts(keys, layout, opt, allowed);
    taken.assign(n, 0);
    token_scores(row, n, opt.score, scores);
    for (int slot = 0; slot < k; ++slot) {
      int best = -1;
      for (int e = 0; e < n; ++e)
        if (allowed[e] && !taken[e] && (best < 0 || keys[e] > keys[best])) best = e;
      taken[best] = 1;
      out.expert(t, slot) = best;
      out.score(t, slot) = static_cast<float>(scores[best]);
      ++out.expert_count[best];
    }
  }
  return out;
}

Routing apply_capacity(const TopK& topk, const MatrixRf& logits, const Eigen::VectorXf& bias,
                       const ExpertLayout& layout, const GateOptions& opt) {
  validate(opt, layout);
  const int n = layout.num_experts();
  const int p = layout.num_ranks();
  const Eigen::Index s = topk.expert.rows();
  const int k = opt.k;
  TAMOE_CHECK_ARG(topk.expert.cols() == k && topk.score.rows() == s && topk.score.cols() == k,
                  "apply_capacity: topk", str("S x ", k, " experts and scores"),
                  str(topk.expert.rows(), " x ", topk.expert.cols(), " experts, ",
                      topk.score.rows(), " x ", topk.score.cols(), " scores"));
  Routing out;
  out.capacity = effective_capacity(opt, s, p);
  out.expert = topk.expert;
  out.weight = topk.score;
  out.dropped = MatrixRb::Zero(s, k);

  if (opt.overflow == Overflow::drop_lowest) {
    std::vector<std::vector<int64_t>> per_rank(p);  // copy ids t*k+slot, token order
    for (Eigen::Index t = 0; t < s; ++t)
      for (int j = 0; j < k; ++j) per_rank[layout.rank_of(topk.expert(t, j))].push_back(t * k + j);
    const float* score = topk.score.data();
    for (int r = 0; r < p; ++r) {
      auto& v = per_rank[r];
      if (static_cast<int64_t>(v.size()) <= out.capacity[r]) continue;
      std::stable_sort(v.begin(), v.end(),
                       [&](int64_t a, int64_t b) { return score[a] > score[b]; });
      for (size_t i = static_cast<size_t>(out.capacity[r]); i < v.size(); ++i)
        out.dropped.data()[v[i]] = 1;
    }
  } else if (opt.overflow == Overflow::reroute) {
    TAMOE_CHECK_ARG(logits.rows() == s && logits.cols() == n, "apply_capacity: logits",
                    str(s, " x ", n), str(logits.rows(), " x ", logits.cols()));
    check_bias(bias, n);
    std::vector<int64_t> room = out.capacity;
    std::vector<float> keys(n);
    std::vector<uint8_t> allowed, used;
    std::vector<double> scores;
    for (Eigen::Index t = 0; t < s; ++t) {
      const float* row = logits.data() + t * n;
      bool scored = false;
      used.assign(n, 0);
      for (int j = 0; j < k; ++j) used[topk.expert(t, j)] = 1;
      for (int j = 0; j < k; ++j) {
        const int e = topk.expert(t, j);
        if (room[layout.rank_of(e)] > 0) {
          --room[layout.rank_of(e)];
          continue;
        }
        if (!scored) {
          for (int c = 0; c < n; ++c) keys[c] = bias.size() ? row[c] + bias[c] : row[c];
          allowed_experts(keys, layout, opt, allowed);
          token_scores(row, n, opt.score, scores);
          scored = true;
        }
        int best = -1;
        for (int c = 0; c < n; ++c)
          if (allowed[c] && !used[c] && room[layout.rank_of(c)] > 0 &&
              (best < 0 || keys[c] > keys[best]))
            best = c;
        if (best < 0) {
          out.dropped(t, j) = 1;
          continue;
        }
        used[best] = 1;
        --room[layout.rank_of(best)];
        out.expert(t, j) = best;
        out.weight(t, j) = static_cast<float>(scores[best]);
        ++out.num_rerouted;
      }
    }
  }

  out.expert_count.assign(n, 0);
  out.rank_count.assign(p, 0);
  for (Eigen::Index t = 0; t < s; ++t) {
    double kept_sum = 0;
    for (int j = 0; j < k; ++j) {
      if (out.dropped(t, j)) {
        out.expert(t, j) = -1;
        out.weight(t, j) = 0.0f;
        ++out.num_dropped;
        continue;
      }
      ++out.expert_count[out.expert(t, j)];
      ++out.rank_count[layout.rank_of(out.expert(t, j))];
      kept_sum += out.weight(t, j);
    }
    if (opt.normalize && kept_sum > 0)
      for (int j = 0; j < k; ++j)
        out.weight(t, j) = static_cast<float>(out.weight(t, j) / kept_sum);
  }
  return out;
}

Routing route(const MatrixRf& logits, const Eigen::VectorXf& bias, const ExpertLayout& layout,
              const GateOptions& opt) {
  return apply_capacity(select_topk(logits, bias, layout, opt), logits, bias, layout, opt);
}

Eigen::VectorXd assignment_share(const std::vector<int64_t>& count) {
  Eigen::VectorXd f(static_cast<Eigen::Index>(count.size()));
  double total = 0;
  for (size_t e = 0; e < count.size(); ++e) total += static_cast<double>(count[e]);
  for (size_t e = 0; e < count.size(); ++e)
    f[static_cast<Eigen::Index>(e)] = total > 0 ? static_cast<double>(count[e]) / total : 0.0;
  return f;
}

}  // namespace tamoe::route
