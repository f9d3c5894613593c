#include "topology/cost_model.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

#include "runtime/error.h"

namespace tamoe::topo {

namespace {
bool positive_finite(double x) {
  return std::isfinite(x) && x > 0;
}
}  // namespace

CostModel::CostModel(int nranks) : nranks_(nranks) {
  if (nranks <= 0)
    fail(Status::invalid_argument, "CostModel", "a positive rank count", std::to_string(nranks));
  for (int r = 0; r < nranks; ++r) vertices_.push_back({"rank" + std::to_string(r), "rank"});
  out_.resize(nranks);
  node_.resize(nranks);
  leaf_.assign(nranks, 0);
  for (int r = 0; r < nranks; ++r) node_[r] = r;
  routes_.assign(static_cast<size_t>(nranks) * nranks, {});
  routed_.assign(nranks, 0);
  explicit_.assign(static_cast<size_t>(nranks) * nranks, 0);
}

int CostModel::add_vertex(const std::string& name, const std::string& kind) {
  if (name.empty())
    fail(Status::invalid_argument, "CostModel::add_vertex", "a vertex name", "an empty string");
  if (find_vertex(name) >= 0)
    fail(Status::invalid_argument, "CostModel::add_vertex", "a unique vertex name",
         "'" + name + "' twice");
  vertices_.push_back({name, kind});
  out_.emplace_back();
  return nvertices() - 1;
}

int CostModel::add_link(int from, int to, double bw_gbps, double lat_us, const std::string& name) {
  const int nv = nvertices();
  std::string nm = name;
  if (from >= 0 && from < nv && to >= 0 && to < nv && nm.empty())
    nm = vertices_[from].name + "->" + vertices_[to].name;
  std::string where = "link '" + nm + "'";
  if (from < 0 || from >= nv || to < 0 || to >= nv || from == to)
    fail(Status::invalid_argument, where, str("two distinct vertices in [0, ", nv, ")"),
         str("from=", from, " to=", to));
  if (!positive_finite(bw_gbps))
    fail(Status::invalid_argument, where + " bw_gbps", "a positive finite bandwidth", str(bw_gbps));
  if (!std::isfinite(lat_us) || lat_us < 0)
    fail(Status::invalid_argument, where + " lat_us", "a non-negative finite latency", str(lat_us));
  Link link;
  link.name = nm;
  link.from = from;
  link.to = to;
  link.bw_gbps = bw_gbps;
  link.lat_us = lat_us;
  links_.push_back(std::move(link));
  out_[from].push_back(nlinks() - 1);
  std::fill(routed_.begin(), routed_.end(), 0);  // the graph changed: BFS routes are stale
  return nlinks() - 1;
}

int CostModel::connect(int a, int b, double bw_ab_gbps, double bw_ba_gbps, double lat_us) {
  int id = add_link(a, b, bw_ab_gbps, lat_us);
  add_link(b, a, bw_ba_gbps, lat_us);
  return id;
}

void CostModel::set_location(int rank, int node, int leaf) {
  if (rank < 0 || rank >= nranks_)
    fail(Status::invalid_argument, "CostModel::set_location", str("a rank in [0, ", nranks_, ")"),
         str(rank));
  if (node < 0 || leaf < 0)
    fail(Status::invalid_argument, str("CostModel::set_location rank ", rank),
         "non-negative node and leaf", str("node=", node, " leaf=", leaf));
  node_[rank] = node;
  leaf_[rank] = leaf;
}

void CostModel::set_self_bw_gbps(double bw) {
  if (!std::isfinite(bw) || bw < 0)
    fail(Status::invalid_argument, "CostModel self_bw_gbps",
         "a non-negative finite bandwidth (0 = free)", str(bw));
  self_bw_gbps_ = bw;
}

void CostModel::set_latency_overlap(double f) {
  if (!std::isfinite(f) || f < 0 || f > 1)
    fail(Status::invalid_argument, "CostModel latency_overlap", "a number in [0, 1]", str(f));
  latency_overlap_ = f;
}

void CostModel::set_route(int i, int j, const std::vector<int>& links) {
  std::string where = str("route ", i, "->", j);
  if (i < 0 || i >= nranks_ || j < 0 || j >= nranks_ || i == j)
    fail(Status::invalid_argument, where, str("two distinct ranks in [0, ", nranks_, ")"),
         str(i, " and ", j));
  int at = i;
  for (size_t k = 0; k < links.size(); ++k) {
    int l = links[k];
    if (l < 0 || l >= nlinks())
      fail(Status::invalid_argument, where, str("link ids in [0, ", nlinks(), ")"), str(l));
    if (links_[l].from != at)
      fail(Status::invalid_argument, where,
           str("a path: link ", k, " to leave ", vertices_[at].name), "'" + links_[l].name + "'");
    at = links_[l].to;
  }
  if (at != j || links.empty())
    fail(Status::invalid_argument, where, "a path ending at " + vertices_[j].name,
         links.empty() ? std::string("no links") : "a path ending at " + vertices_[at].name);
  size_t idx = static_cast<size_t>(i) * nranks_ + j;
  routes_[idx] = links;
  explicit_[idx] = 1;
}

int CostModel::find_vertex(const std::string& name) const {
  for (int v = 0; v < nvertices(); ++v)
    if (vertices_[v].name == name) return v;
  return -1;
}

int CostModel::nnodes() const {
  int n = 0;
  for (int x : node_) n = std::max(n, x + 1);
  return n;
}

int CostModel::pair_level(int i, int j) const {
  if (i == j) return 0;
  if (node_.at(i) == node_.at(j)) return 1;
  if (leaf_.at(i) == leaf_.at(j)) return 2;
  return 3;
}

const char* CostModel::level_name(int level) {
  static const char* names[] = {"self", "node", "leaf", "remote"};
  return level >= 0 && level < 4 ? names[level] : "?";
}

void CostModel::compute_routes_from(int src) const {
  // BFS over shared elements only: a route never passes through a third rank.
  const int nv = nvertices();
  std::vector<int> via(nv, -1);  // link used to reach a vertex
  std::vector<char> seen(nv, 0);
  std::deque<int> q{src};
  seen[src] = 1;
  while (!q.empty()) {
    int v = q.front();
    q.pop_front();
    if (v != src && v < nranks_) continue;
    // Ties go to the lower vertex id: visit out-links in order of their target id.
    std::vector<int> outs = out_[v];
    std::sort(outs.begin(), outs.end(), [&](int a, int b) { return links_[a].to < links_[b].to; });
    for (int l : outs) {
      int w = links_[l].to;
      if (seen[w]) continue;
      seen[w] = 1;
      via[w] = l;
      q.push_back(w);
    }
  }
  for (int dst = 0; dst < nranks_; ++dst) {
    size_t idx = static_cast<size_t>(src) * nranks_ + dst;
    if (dst == src || explicit_[idx]) continue;
    std::vector<int>& r = routes_[idx];
    r.clear();
    for (int v = dst; v != src && via[v] >= 0; v = links_[via[v]].from) r.push_back(via[v]);
    std::reverse(r.begin(), r.end());
    if (!seen[dst]) r.clear();
  }
  routed_[src] = 1;
}

const std::vector<int>& CostModel::route(int i, int j) const {
  if (i < 0 || i >= nranks_ || j < 0 || j >= nranks_)
    fail(Status::invalid_argument, "CostModel::route", str("ranks in [0, ", nranks_, ")"),
         str(i, " -> ", j));
  if (!routed_[i]) compute_routes_from(i);
  const std::vector<int>& r = routes_[static_cast<size_t>(i) * nranks_ + j];
  if (i != j && r.empty())
    fail(Status::invalid_input, "cost model", str("a path from rank ", i, " to rank ", j),
         "no path (the pair is unreachable)");
  return r;
}

double CostModel::route_latency_us(int i, int j) const {
  double t = 0;
  for (int l : route(i, j)) t += links_[l].lat_us;
  return t;
}

void CostModel::validate(const std::string& where) const {
  if (nranks_ <= 0) fail(Status::invalid_input, where, "at least one rank", str(nranks_));
  for (int i = 0; i < nranks_; ++i)
    for (int j = 0; j < nranks_; ++j) {
      if (i == j) continue;
      if (!routed_[i]) compute_routes_from(i);
      if (routes_[static_cast<size_t>(i) * nranks_ + j].empty())
        fail(Status::invalid_input, where,
             str("a path from ", vertices_[i].name, " to ", vertices_[j].name),
             "none (unreachable pair)");
    }
}

double Link::bw_at(double message_bytes) const {
  if (bw_curve.empty() || message_bytes <= 0) return bw_gbps;
  if (message_bytes <= bw_curve.front().first) return bw_curve.front().second;
  if (message_bytes >= bw_curve.back().first) return bw_curve.back().second;
  for (size_t k = 1; k < bw_curve.size(); ++k)
    if (message_bytes <= bw_curve[k].first) {
      const auto& [x0, y0] = bw_curve[k - 1];
      const auto& [x1, y1] = bw_curve[k];
      double f = std::log(message_bytes / x0) / std::log(x1 / x0);
      return y0 + f * (y1 - y0);
    }
  return bw_curve.back().second;
}

void CostModel::set_bw_curve(int l, std::vector<std::pair<double, double>> curve) {
  std::string where = str("link '", link(l).name, "' bw_curve");
  for (size_t k = 0; k < curve.size(); ++k) {
    if (!positive_finite(curve[k].first) || !positive_finite(curve[k].second))
      fail(Status::invalid_argument, str(where, "[", k, "]"), "positive finite (bytes, GB/s)",
           str("(", curve[k].first, ", ", curve[k].second, ")"));
    if (k > 0 && curve[k].first <= curve[k - 1].first)
      fail(Status::invalid_argument, str(where, "[", k, "]"), "message sizes in increasing order",
           str(curve[k].first, " after ", curve[k - 1].first));
  }
  links_[l].bw_curve = std::move(curve);
}

template <typename F>
void CostModel::for_each_hop(const std::vector<double>& D, F&& f) const {
  const size_t P = static_cast<size_t>(nranks_);
  if (D.size() != P * P)
    fail(Status::invalid_argument, "CostModel::predict",
         str("a ", P, "x", P, " traffic matrix (", P * P, " entries)"), str(D.size(), " entries"));
  for (size_t i = 0; i < P; ++i) {
    double row = 0;
    for (size_t j = 0; j < P; ++j) row += D[i * P + j];
    for (size_t j = 0; j < P; ++j) {
      double d = D[i * P + j];
      if (!std::isfinite(d) || d < 0)
        fail(Status::invalid_argument, str("traffic matrix entry (", i, ",", j, ")"),
             "a non-negative finite byte count", str(d));
      if (d == 0) continue;
      if (i == j) {
        if (self_on_ingress_)
          for (int l = 0; l < nlinks(); ++l)
            if (links_[l].to == static_cast<int>(i)) {
              f(l, d, row);
              break;
            }
        continue;
      }
      for (int l : route(static_cast<int>(i), static_cast<int>(j))) f(l, d, row);
    }
  }
}

std::vector<double> CostModel::link_loads(const std::vector<double>& D) const {
  std::vector<double> load(links_.size(), 0.0);
  for_each_hop(D, [&](int l, double d, double) { load[l] += d; });
  return load;
}

Prediction CostModel::predict(const std::vector<double>& D) const {
  Prediction p;
  // Per link: the sum over the messages crossing it of bytes / bandwidth at that message size.
  std::vector<double> busy(links_.size(), 0.0);
  for_each_hop(D, [&](int l, double d, double row) {
    busy[l] += d / (links_[l].bw_at(curve_key_ == CurveKey::rank_volume ? row : d) * 1e9);
  });
  const size_t P = static_cast<size_t>(nranks_);
  for (size_t l = 0; l < busy.size(); ++l) {
    if (busy[l] > p.bandwidth_seconds) {
      p.bandwidth_seconds = busy[l];
      p.bottleneck_link = static_cast<int>(l);
    }
  }
  if (self_bw_gbps_ > 0 && !self_on_ingress_)
    for (size_t i = 0; i < P; ++i) {
      double t = D[i * P + i] / (self_bw_gbps_ * 1e9);
      if (t > p.bandwidth_seconds) {
        p.bandwidth_seconds = t;
        p.bottleneck_link = -1;
      }
    }
  double worst_lat_us = 0;
  for (size_t i = 0; i < P; ++i) {
    double s = 0;
    for (size_t j = 0; j < P; ++j)
      if (j != i && D[i * P + j] > 0)
        s += route_latency_us(static_cast<int>(i), static_cast<int>(j));
    worst_lat_us = std::max(worst_lat_us, s);
  }
  p.latency_seconds = latency_overlap_ * worst_lat_us * 1e-6;
  p.seconds = p.bandwidth_seconds + p.latency_seconds;
  return p;
}

}  // namespace tamoe::topo
