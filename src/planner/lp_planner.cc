#include "planner/lp_planner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "planner/clp_lp.h"
#include "runtime/error.h"

namespace tamoe::plan {

void check_rho(double rho, const std::string& where) {
  if (!std::isfinite(rho) || rho < 1)
    fail(Status::invalid_argument, where + " rho",
         "a finite bound rho >= 1 (1 forces uniform routing)", str(rho));
}

double plan_link_bw_gbps(const topo::CostModel& cm, int link, double volume_bytes) {
  const topo::Link& l = cm.link(link);
  if (l.bw_curve.empty()) return l.bw_gbps;
  double key = cm.curve_key() == topo::CostModel::CurveKey::rank_volume
                   ? volume_bytes
                   : volume_bytes / cm.nranks();
  return l.bw_at(key);
}

int self_ingress_link(const topo::CostModel& cm, int rank) {
  if (!cm.self_on_ingress()) return -1;
  for (int l = 0; l < cm.nlinks(); ++l)
    if (cm.link(l).to == rank) return l;
  return -1;
}

double marginal_error(const std::vector<double>& x, int nranks) {
  const size_t P = static_cast<size_t>(nranks);
  std::vector<double> col(P, 0.0);
  double err = 0;
  for (size_t i = 0; i < P; ++i) {
    double row = 0;
    for (size_t j = 0; j < P; ++j) {
      row += x[i * P + j];
      col[j] += x[i * P + j];
    }
    err = std::max(err, std::abs(row - 1));
  }
  for (double c : col) err = std::max(err, std::abs(c - 1));
  return err;
}

void polish_marginals(std::vector<double>& x, int nranks, double hi) {
  const size_t P = static_cast<size_t>(nranks);
  for (double& v : x) v = std::clamp(v, 0.0, hi);
  std::vector<double> col(P);
  for (int round = 0; round < 200 && marginal_error(x, nranks) > 1e-13; ++round) {
    for (size_t i = 0; i < P; ++i) {
      double row = 0;
      for (size_t j = 0; j < P; ++j) row += x[i * P + j];
      if (row > 0)
        for (size_t j = 0; j < P; ++j) x[i * P + j] /= row;
    }
    std::fill(col.begin(), col.end(), 0.0);
    for (size_t i = 0; i < P; ++i)
      for (size_t j = 0; j < P; ++j) col[j] += x[i * P + j];
    for (size_t i = 0; i < P; ++i)
      for (size_t j = 0; j < P; ++j)
        if (col[j] > 0) x[i * P + j] = std::min(hi, x[i * P + j] / col[j]);
  }
}

LpPlanResult solve_dispatch_lp(const topo::CostModel& cm, double volume_bytes, double rho) {
  auto t0 = std::chrono::steady_clock::now();
  const std::string where = "LP planner";
  check_rho(rho, where);
  if (!std::isfinite(volume_bytes) || volume_bytes <= 0)
    fail(Status::invalid_argument, where + " volume", "a positive finite byte count",
         str(volume_bytes));
  const int P = cm.nranks();
  if (P < 1) fail(Status::invalid_argument, where, "a cost model with ranks", str(P, " ranks"));
  const double hi = std::min(1.0, rho / P);

  // Which pairs each link carries. Routes throw for an unreachable pair, naming it.
  std::vector<std::vector<int>> pairs_on(cm.nlinks());
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) {
      if (i == j) {
        int l = self_ingress_link(cm, i);
        if (l >= 0) pairs_on[l].push_back(i * P + i);
        continue;
      }
      for (int l : cm.route(i, j)) pairs_on[l].push_back(i * P + j);
    }
  // Links that carry the same pairs (a rank's NIC port and its cable, both directions of a
  // fabric port under a symmetric plan are different sets, but e.g. rank->nic and nic->leaf are
  // the same) need one row: the slowest one.
  std::map<std::vector<int>, double> slowest;  // pair set -> lowest bandwidth
  for (int l = 0; l < cm.nlinks(); ++l) {
    if (pairs_on[l].empty()) continue;
    double bw = plan_link_bw_gbps(cm, l, volume_bytes);
    auto [it, fresh] = slowest.emplace(std::move(pairs_on[l]), bw);
    if (!fresh) it->second = std::min(it->second, bw);
  }
  // Self copies with their own bandwidth are one-pair "links".
  if (cm.self_bw_gbps() > 0 && !cm.self_on_ingress())
    for (int i = 0; i < P; ++i) slowest.emplace(std::vector<int>{i * P + i}, cm.self_bw_gbps());
  double bref = 0;
  for (const auto& [set, bw] : slowest) bref = std::max(bref, bw);

  // Columns 0..P*P-1 are X (row-major), column P*P is t in units of V / (bref GB/s).
  LinearProgram lp;
  for (int k = 0; k < P * P; ++k) lp.add_col(0, 0, hi);
  const int tcol = lp.add_col(1, 0, 1e30);
  for (int i = 0; i < P; ++i) {
    int r = lp.add_row(1, 1);
    for (int j = 0; j < P; ++j) lp.add(r, i * P + j, 1);
  }
  for (int j = 0; j < P; ++j) {
    int r = lp.add_row(1, 1);
    for (int i = 0; i < P; ++i) lp.add(r, i * P + j, 1);
  }
  int link_rows = 0;
  for (const auto& [set, bw] : slowest) {
    int r = lp.add_row(-1e30, 0);
    for (int k : set) lp.add(r, k, bref / bw);
    lp.add(r, tcol, -1);
    ++link_rows;
  }
  LpSolution s = solve_lp(lp, where);

  LpPlanResult res;
  res.x.assign(s.x.begin(), s.x.begin() + static_cast<size_t>(P) * P);
  polish_marginals(res.x, P, hi);
  res.bw_seconds = s.x[tcol] * volume_bytes / (bref * 1e9);
  res.iterations = s.iterations;
  res.link_rows = link_rows;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace tamoe::plan
