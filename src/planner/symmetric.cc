#include "planner/symmetric.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "planner/clp_lp.h"
#include "planner/lp_planner.h"
#include "runtime/error.h"

namespace tamoe::plan {

namespace {
// Merges classes with the same bandwidth and pair counts (e.g. a NIC port and its cable).
void add_class(ReducedProblem& r, const std::string& name, double bw,
               const std::array<double, kLevels>& pairs) {
  bool any = false;
  for (double p : pairs) any = any || p > 0;
  if (!any) return;
  for (auto& c : r.links)
    if (c.bw_gbps == bw && c.pairs == pairs) return;
  r.links.push_back({name, bw, pairs});
}
}  // namespace

ReducedProblem reduce(const topo::CostModel& cm, double volume_bytes) {
  const std::string where = "symmetry-reduced planner";
  const int P = cm.nranks();
  if (P < 1) fail(Status::invalid_argument, where, "a cost model with ranks", str(P, " ranks"));
  ReducedProblem r;
  r.nranks = P;
  r.source = cm.source();
  r.latency_overlap = cm.latency_overlap();
  r.lat_sum_us.assign(P, {});
  std::vector<std::array<double, kLevels>> pairs(cm.nlinks());
  for (int i = 0; i < P; ++i) {
    std::array<int64_t, kLevels> cnt{};
    for (int j = 0; j < P; ++j) {
      int lv = cm.pair_level(i, j);
      cnt[lv]++;
      if (i == j) {
        int l = self_ingress_link(cm, i);
        if (l >= 0) pairs[l][0] += 1;
        continue;
      }
      for (int l : cm.route(i, j)) pairs[l][lv] += 1;
      r.lat_sum_us[i][lv] += cm.route_latency_us(i, j);
    }
    if (i == 0) r.count = cnt;
    if (cnt != r.count)
      fail(Status::invalid_input, str(where, " (rank ", i, ")"),
           str("the level counts of rank 0 (self/node/leaf/remote ", r.count[0], "/", r.count[1],
               "/", r.count[2], "/", r.count[3], ") on a regular hierarchy"),
           str(cnt[0], "/", cnt[1], "/", cnt[2], "/", cnt[3], "; use --mode lp or sinkhorn"));
  }
  for (int l = 0; l < cm.nlinks(); ++l)
    add_class(r, cm.link(l).name, plan_link_bw_gbps(cm, l, volume_bytes), pairs[l]);
  if (cm.self_bw_gbps() > 0 && !cm.self_on_ingress())
    add_class(r, "self copy", cm.self_bw_gbps(), {1, 0, 0, 0});
  r.node.resize(P);
  r.leaf.resize(P);
  for (int i = 0; i < P; ++i) {
    r.node[i] = cm.node_of(i);
    r.leaf[i] = cm.leaf_of(i);
  }
  return r;
}

ReducedProblem reduce(const topo::SyntheticCluster& c) {
  // Validates the same fields with the same messages (a 1x1 probe build is cheap).
  {
    topo::SyntheticCluster tiny = c;
    tiny.nodes = 1;
    tiny.ranks_per_node = 1;
    tiny.nodes_per_leaf = 0;
    if (c.nodes < 1)
      fail(Status::invalid_argument, "synthetic cluster nodes", "at least 1", str(c.nodes));
    if (c.ranks_per_node < 1)
      fail(Status::invalid_argument, "synthetic cluster rpn", "at least 1 rank per node",
           str(c.ranks_per_node));
    if (c.nodes_per_leaf < 0)
      fail(Status::invalid_argument, "synthetic cluster leaf", "0 (one switch) or nodes per leaf",
           str(c.nodes_per_leaf));
    (void)topo::make_synthetic(tiny);
    if (!std::isfinite(c.oversubscription) || c.oversubscription < 1)
      fail(Status::invalid_argument, "synthetic cluster oversub", "an oversubscription ratio >= 1",
           str(c.oversubscription));
  }
  const int64_t n = c.nodes, m = c.ranks_per_node;
  const int64_t L = c.nodes_per_leaf == 0 ? n : std::min<int64_t>(c.nodes_per_leaf, n);
  if (n % L != 0)
    fail(Status::invalid_argument, "symmetry-reduced planner (synthetic cluster leaf)",
         str("nodes (", n, ") divisible by nodes per leaf for a regular hierarchy"), str(L));
  const int64_t nleaves = n / L;
  ReducedProblem r;
  r.nranks = static_cast<int>(n * m);
  r.source = "synthetic " + topo::to_string(c);
  r.count = {1, m - 1, (L - 1) * m, (n - L) * m};
  const double off2 = static_cast<double>(r.count[2]), off3 = static_cast<double>(r.count[3]);
  if (m > 1) add_class(r, "rank<->node fabric", c.intra_bw_gbps, {0, double(m - 1), 0, 0});
  if (c.nic_per_rank) {
    add_class(r, "rank<->nic<->leaf", c.nic_bw_gbps, {0, 0, off2, off3});
  } else {
    add_class(r, "rank<->shared nic", c.intra_bw_gbps, {0, 0, off2, off3});
    add_class(r, "shared nic<->leaf", c.nic_bw_gbps, {0, 0, double(m) * off2, double(m) * off3});
  }
  if (nleaves > 1) {
    const double node_nic = c.nic_bw_gbps * (c.nic_per_rank ? m : 1);
    add_class(r, "leaf<->spine", L * node_nic / c.oversubscription,
              {0, 0, 0, double(L * m) * off3});
  }
  // Route latencies as make_synthetic sets them: a fabric port is intra_lat/2 per hop, a NIC per
  // rank nic_lat/2 per hop (port and cable), a shared NIC nic_lat on its cable, a spine hop
  // switch_lat.
  const double lat1 = c.intra_lat_us, lat2 = 2 * c.nic_lat_us, lat3 = lat2 + 2 * c.switch_lat_us;
  r.lat_sum_us.assign(1, {0, (m - 1) * lat1, off2 * lat2, off3 * lat3});
  r.latency_overlap = 1;
  r.node.resize(r.nranks);
  r.leaf.resize(r.nranks);
  for (int i = 0; i < r.nranks; ++i) {
    r.node[i] = static_cast<int>(i / m);
    r.leaf[i] = static_cast<int>(i / m / L);
  }
  return r;
}

LadderTimes ladder_times(const ReducedProblem& r, const std::array<double, kLevels>& x,
                         double volume_bytes) {
  LadderTimes t;
  for (const auto& c : r.links) {
    double load = 0;
    for (int lv = 0; lv < kLevels; ++lv) load += c.pairs[lv] * x[lv];
    t.bw_seconds = std::max(t.bw_seconds, volume_bytes * load / (c.bw_gbps * 1e9));
  }
  double worst = 0;
  for (const auto& row : r.lat_sum_us) {
    double s = 0;
    for (int lv = 1; lv < kLevels; ++lv)
      if (x[lv] > 0) s += row[lv];
    worst = std::max(worst, s);
  }
  t.lat_seconds = r.latency_overlap * worst * 1e-6;
  return t;
}

ReducedSolution solve_reduced(const ReducedProblem& r, double volume_bytes, double rho) {
  auto t0 = std::chrono::steady_clock::now();
  const std::string where = "symmetry-reduced planner";
  check_rho(rho, where);
  if (!std::isfinite(volume_bytes) || volume_bytes <= 0)
    fail(Status::invalid_argument, where + " volume", "a positive finite byte count",
         str(volume_bytes));
  const double hi = std::min(1.0, rho / r.nranks);
  double bref = 0;
  for (const auto& c : r.links) bref = std::max(bref, c.bw_gbps);
  LinearProgram lp;
  for (int lv = 0; lv < kLevels; ++lv) lp.add_col(0, 0, r.count[lv] > 0 ? hi : 0);
  const int tcol = lp.add_col(1, 0, 1e30);
  int row = lp.add_row(1, 1);
  for (int lv = 0; lv < kLevels; ++lv)
    if (r.count[lv] > 0) lp.add(row, lv, static_cast<double>(r.count[lv]));
  for (const auto& c : r.links) {
    int k = lp.add_row(-1e30, 0);
    // Scaled by the row count so coefficients stay near 1 at 16k ranks.
    for (int lv = 0; lv < kLevels; ++lv)
      if (c.pairs[lv] > 0) lp.add(k, lv, c.pairs[lv] * bref / c.bw_gbps / r.nranks);
    lp.add(k, tcol, -1);
  }
  LpSolution s = solve_lp(lp, where);
  ReducedSolution out;
  for (int lv = 0; lv < kLevels; ++lv) out.x[lv] = std::clamp(s.x[lv], 0.0, hi);
  // Put the solver's residue on a level strictly inside its bounds so rows sum to 1 exactly.
  double sum = 0;
  for (int lv = 0; lv < kLevels; ++lv) sum += r.count[lv] * out.x[lv];
  for (int lv = kLevels - 1; lv >= 0; --lv)
    if (r.count[lv] > 0 && out.x[lv] > 0 && out.x[lv] < hi) {
      out.x[lv] = std::clamp(out.x[lv] - (sum - 1) / r.count[lv], 0.0, hi);
      break;
    }
  out.bw_seconds = ladder_times(r, out.x, volume_bytes).bw_seconds;
  out.iterations = s.iterations;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

TwoLevelClosedForm two_level_closed_form(int nodes, int ranks_per_node, double intra_bw_gbps,
                                         double inter_bw_per_rank_gbps, double volume_bytes,
                                         double rho) {
  const std::string where = "two-level closed form";
  if (nodes < 2 || ranks_per_node < 2)
    fail(Status::invalid_argument, where, "at least 2 nodes and 2 ranks per node",
         str(nodes, " x ", ranks_per_node));
  check_rho(rho, where);
  const double n = nodes, m = ranks_per_node, P = n * m;
  const double beta = inter_bw_per_rank_gbps / intra_bw_gbps;
  TwoLevelClosedForm f;
  f.x_star = 1 / (m + (m - 1) * beta);
  f.y_star = (m - 1) * beta * f.x_star / ((n - 1) * m);
  f.rho_star = P * f.x_star;
  const double r = std::min(1.0, rho / P);
  double remote_total;
  if (r <= f.x_star) {
    f.self = f.node = r;
    remote_total = 1 - m * r;
    f.bw_seconds = volume_bytes * remote_total / (inter_bw_per_rank_gbps * 1e9);
  } else {
    f.self = r;
    f.node = (1 - r) / ((m - 1) * (1 + beta));
    remote_total = 1 - r - (m - 1) * f.node;
    f.bw_seconds = volume_bytes * (m - 1) * f.node / (intra_bw_gbps * 1e9);
  }
  f.remote = remote_total / ((n - 1) * m);
  return f;
}

}  // namespace tamoe::plan
