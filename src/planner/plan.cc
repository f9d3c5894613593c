#include "planner/plan.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "runtime/error.h"

namespace tamoe::plan {

const char* level_name(int level) {
  static const char* names[] = {"self", "node", "leaf", "remote"};
  return level >= 0 && level < kLevels ? names[level] : "?";
}

double MoeShape::volume_bytes() const {
  return static_cast<double>(tokens_per_rank) * top_k * static_cast<double>(hidden) *
         bytes_per_element;
}

void MoeShape::validate(const std::string& where) const {
  if (experts_per_rank < 1)
    fail(Status::invalid_argument, where + " experts_per_rank", "at least 1 expert per rank",
         str(experts_per_rank));
  if (tokens_per_rank < 1)
    fail(Status::invalid_argument, where + " tokens_per_rank", "at least 1 token",
         str(tokens_per_rank));
  if (top_k < 1) fail(Status::invalid_argument, where + " top_k", "at least 1", str(top_k));
  if (hidden < 1) fail(Status::invalid_argument, where + " hidden", "at least 1", str(hidden));
  if (bytes_per_element < 1)
    fail(Status::invalid_argument, where + " bytes_per_element", "at least 1",
         str(bytes_per_element));
  if (!std::isfinite(capacity_factor) || capacity_factor <= 0)
    fail(Status::invalid_argument, where + " capacity_factor", "a positive finite number",
         str(capacity_factor));
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::lp:
      return "lp";
    case Mode::sym:
      return "sym";
    case Mode::sinkhorn:
      return "sinkhorn";
    case Mode::uniform:
      return "uniform";
  }
  return "?";
}

Mode parse_mode(const std::string& s, const std::string& where) {
  if (s == "lp") return Mode::lp;
  if (s == "sym") return Mode::sym;
  if (s == "sinkhorn") return Mode::sinkhorn;
  if (s == "uniform") return Mode::uniform;
  fail(Status::invalid_input, where, "one of lp, sym, sinkhorn, uniform", "'" + s + "'");
}

int Plan::level(int i, int j) const {
  if (i == j) return 0;
  if (node[i] == node[j]) return 1;
  if (leaf[i] == leaf[j]) return 2;
  return 3;
}

double Plan::at(int i, int j) const {
  if (is_ladder) return ladder_x[level(i, j)];
  return x[static_cast<size_t>(i) * nranks + j];
}

std::vector<double> Plan::dense() const {
  if (!is_ladder) return x;
  if (nranks > 8192)
    fail(Status::invalid_argument, "Plan::dense", "at most 8192 ranks for a dense matrix",
         str(nranks, " ranks (use at(i, j) on the ladder)"));
  std::vector<double> d(static_cast<size_t>(nranks) * nranks);
  for (int i = 0; i < nranks; ++i)
    for (int j = 0; j < nranks; ++j) d[static_cast<size_t>(i) * nranks + j] = at(i, j);
  return d;
}

std::vector<double> Plan::target(int rank) const {
  if (rank < 0 || rank >= nranks)
    fail(Status::invalid_argument, "Plan::target", str("a rank in [0, ", nranks, ")"), str(rank));
  const int E = shape.experts_per_rank;
  std::vector<double> t(static_cast<size_t>(nranks) * E);
  for (int j = 0; j < nranks; ++j)
    for (int e = 0; e < E; ++e) t[static_cast<size_t>(j) * E + e] = at(rank, j) / E;
  return t;
}

int64_t Plan::capacity(int i, int j) const {
  // The tiny slack keeps an X that is an exact fraction of S*k from rounding up one slot.
  double slots =
      shape.capacity_factor * static_cast<double>(shape.tokens_per_rank) * shape.top_k * at(i, j);
  return static_cast<int64_t>(std::ceil(slots * (1 - 1e-12)));
}

std::vector<int64_t> Plan::capacity_row(int rank) const {
  std::vector<int64_t> c(nranks);
  for (int j = 0; j < nranks; ++j) c[j] = capacity(rank, j);
  return c;
}

namespace {
// Per rank: how many destinations sit at each level.
std::vector<std::array<int64_t, kLevels>> level_counts(const Plan& p) {
  std::unordered_map<int, int64_t> node_size, leaf_size;
  for (int r = 0; r < p.nranks; ++r) {
    node_size[p.node[r]]++;
    leaf_size[p.leaf[r]]++;
  }
  std::vector<std::array<int64_t, kLevels>> c(p.nranks);
  for (int r = 0; r < p.nranks; ++r) {
    int64_t ns = node_size[p.node[r]], ls = leaf_size[p.leaf[r]];
    c[r] = {1, ns - 1, ls - ns, p.nranks - ls};
  }
  return c;
}
}  // namespace

void Plan::validate(const std::string& where, double tol) const {
  if (nranks < 1) fail(Status::invalid_input, where + " nranks", "at least 1 rank", str(nranks));
  shape.validate(where + " shape");
  if (!std::isfinite(rho) || rho < 1)
    fail(Status::invalid_input, where + " rho", "a finite bound >= 1", str(rho));
  if (static_cast<int>(node.size()) != nranks)
    fail(Status::invalid_input, where + " node", str(nranks, " entries (one per rank)"),
         str(node.size()));
  if (static_cast<int>(leaf.size()) != nranks)
    fail(Status::invalid_input, where + " leaf", str(nranks, " entries (one per rank)"),
         str(leaf.size()));
  std::unordered_map<int, int> leaf_of_node;
  for (int r = 0; r < nranks; ++r) {
    auto [it, fresh] = leaf_of_node.emplace(node[r], leaf[r]);
    if (!fresh && it->second != leaf[r])
      fail(Status::invalid_input, str(where, " leaf[", r, "]"),
           str("leaf ", it->second, " like the other ranks of node ", node[r]), str(leaf[r]));
  }
  const double hi = std::min(1.0, rho / nranks);
  auto check_entry = [&](double v, const std::string& field) {
    if (!std::isfinite(v) || v < -tol || v > hi + tol)
      fail(Status::invalid_input, where + " " + field, str("a fraction in [0, rho/P = ", hi, "]"),
           str(v));
  };
  if (is_ladder) {
    for (int l = 0; l < kLevels; ++l) check_entry(ladder_x[l], str("ladder.", level_name(l)));
    auto counts = level_counts(*this);
    for (int r = 0; r < nranks; ++r) {
      double s = 0;
      for (int l = 0; l < kLevels; ++l) s += counts[r][l] * ladder_x[l];
      if (std::abs(s - 1) > tol)
        fail(Status::invalid_input, str(where, " ladder (row/column of rank ", r, ")"),
             "fractions summing to 1", str(s));
    }
    return;
  }
  const size_t P = static_cast<size_t>(nranks);
  if (x.size() != P * P)
    fail(Status::invalid_input, where + " x", str(P, "x", P, " entries"), str(x.size()));
  std::vector<double> col(P, 0.0);
  for (size_t i = 0; i < P; ++i) {
    double row = 0;
    for (size_t j = 0; j < P; ++j) {
      double v = x[i * P + j];
      check_entry(v, str("x[", i, "][", j, "]"));
      row += v;
      col[j] += v;
    }
    if (std::abs(row - 1) > tol)
      fail(Status::invalid_input, str(where, " x[", i, "] (row sum)"), "1", str(row));
  }
  for (size_t j = 0; j < P; ++j)
    if (std::abs(col[j] - 1) > tol)
      fail(Status::invalid_input, str(where, " x[*][", j, "] (column sum)"), "1", str(col[j]));
}

void Plan::check_matches(int job_nranks, int job_experts_per_rank, const std::string& where) const {
  if (job_nranks != nranks)
    fail(Status::mismatch, where, str("a plan for the job's ", job_nranks, " ranks"),
         str("a plan for ", nranks, " ranks"));
  if (job_experts_per_rank > 0 && job_experts_per_rank != shape.experts_per_rank)
    fail(Status::mismatch, where,
         str("a plan for the job's ", job_experts_per_rank, " experts per rank"),
         str("a plan for ", shape.experts_per_rank, " experts per rank"));
}

double kl_from_uniform(const std::vector<double>& x, int nranks) {
  double kl = 0;
  for (double v : x)
    if (v > 0) kl += v * std::log(v * nranks);
  return kl / nranks;
}

void compute_structure_metrics(Plan& p) {
  Metrics& m = p.metrics;
  m.share.fill(0);
  m.ladder.fill(0);
  m.pairs_per_row.fill(0);
  auto counts = level_counts(p);
  // Pairs per row are reported for rank 0 (a regular hierarchy has the same for every rank).
  m.pairs_per_row = counts[0];
  std::array<double, kLevels> pairs{};
  for (int r = 0; r < p.nranks; ++r)
    for (int l = 0; l < kLevels; ++l) pairs[l] += static_cast<double>(counts[r][l]);
  if (p.is_ladder) {
    double kl = 0;
    for (int l = 0; l < kLevels; ++l) {
      double xv = p.ladder_x[l];
      m.ladder[l] = pairs[l] > 0 ? xv : 0;
      m.share[l] = pairs[l] * xv / p.nranks;
      if (xv > 0) kl += pairs[l] * xv * std::log(xv * p.nranks);
    }
    m.kl_from_uniform = kl / p.nranks;
    return;
  }
  const size_t P = static_cast<size_t>(p.nranks);
  std::array<double, kLevels> sum{};
  for (size_t i = 0; i < P; ++i)
    for (size_t j = 0; j < P; ++j)
      sum[p.level(static_cast<int>(i), static_cast<int>(j))] += p.x[i * P + j];
  for (int l = 0; l < kLevels; ++l) {
    m.share[l] = sum[l] / p.nranks;
    m.ladder[l] = pairs[l] > 0 ? sum[l] / pairs[l] : 0;
  }
  m.kl_from_uniform = kl_from_uniform(p.x, p.nranks);
}

}  // namespace tamoe::plan
