#include "topology/probe.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>

#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/params.h"

namespace tamoe::topo {

namespace {
double now() {
  return MPI_Wtime();
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}
double median(std::vector<double> v) {
  return quantile(std::move(v), 0.5);
}

std::vector<int64_t> sweep_sizes(const ProbeOptions& o) {
  std::vector<int64_t> s;
  for (int64_t b = std::max<int64_t>(1, o.min_bytes); b <= o.max_bytes; b *= 4) s.push_back(b);
  if (s.empty() || s.back() != o.max_bytes) s.push_back(o.max_bytes);
  return s;
}

// Which class a pair of ranks belongs to.
std::string pair_class(const Cluster& c, int i, int j) {
  if (c.node_of(i) == c.node_of(j)) return "node";
  if (c.host_of(i) == c.host_of(j)) return "host";
  return "remote";
}

// Up to `max_pairs` pairs (i < j) of each class, the same on every rank (seeded).
std::vector<std::pair<std::string, std::vector<std::pair<int, int>>>> sample_pairs(const Cluster& c,
                                                                                   int max_pairs,
                                                                                   uint64_t seed) {
  const int P = c.size();
  std::mt19937_64 rng(seed);
  std::vector<std::string> names = {"node", "host", "remote"};
  std::vector<std::vector<std::pair<int, int>>> by(3);
  auto idx = [&](const std::string& n) {
    return static_cast<int>(std::find(names.begin(), names.end(), n) - names.begin());
  };
  if (static_cast<int64_t>(P) * P <= 1 << 20) {
    for (int i = 0; i < P; ++i)
      for (int j = i + 1; j < P; ++j) by[idx(pair_class(c, i, j))].push_back({i, j});
    for (auto& v : by) {
      std::shuffle(v.begin(), v.end(), rng);
      if (static_cast<int>(v.size()) > max_pairs) v.resize(max_pairs);
    }
  } else {
    std::set<std::pair<int, int>> seen;
    std::uniform_int_distribution<int> pick(0, P - 1);
    for (int64_t tries = 0; tries < 200LL * max_pairs; ++tries) {
      int i = pick(rng), j = pick(rng);
      if (i == j) continue;
      if (i > j) std::swap(i, j);
      auto& v = by[idx(pair_class(c, i, j))];
      if (static_cast<int>(v.size()) < max_pairs && seen.insert({i, j}).second) v.push_back({i, j});
    }
  }
  std::vector<std::pair<std::string, std::vector<std::pair<int, int>>>> out;
  for (int k = 0; k < 3; ++k)
    if (!by[k].empty()) {
      std::sort(by[k].begin(), by[k].end());
      out.push_back({names[k], by[k]});
    }
  return out;
}

// Ping-pong between a and b; returns the median one-way time on rank a, 0 elsewhere.
double ping_pong(ProbeTransport& tr, int me, int a, int b, int64_t bytes, int iters) {
  if (me != a && me != b) return 0;
  std::vector<double> t;
  for (int it = -1; it < iters; ++it) {  // one warm-up
    double dt = tr.round_trip(me == a ? b : a, me == a, bytes);
    if (it >= 0) t.push_back(dt / 2);
  }
  return me == a ? median(t) : 0;
}

// Every rank exchanges with all its `peers` at once; the slowest rank's median time, or 0 if no
// rank had a peer.
double concurrent(MPI_Comm comm, ProbeTransport& tr, const std::vector<int>& peers, int64_t bytes,
                  int iters) {
  int any = peers.empty() ? 0 : 1;
  MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, comm);
  if (!any) return 0;
  std::vector<double> t;
  for (int it = -1; it < iters; ++it) {
    MPI_Barrier(comm);
    double dt = peers.empty() ? 0 : tr.exchange(peers, bytes);
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, comm);
    if (it >= 0) t.push_back(dt);
  }
  // Lower quartile: on a loaded or oversubscribed host, scheduling hiccups only ever add time,
  // and one slow iteration must not halve a link's bandwidth.
  return quantile(t, 0.25);
}

void progress(const ProbeOptions& o, int rank, const std::string& msg) {
  if (o.progress && rank == 0) std::fprintf(stderr, "[tamoe-probe] %s\n", msg.c_str());
}
}  // namespace

const ProbeClassResult* ProbeResult::find(const std::string& name) const {
  for (const auto& c : classes)
    if (c.name == name) return &c;
  return nullptr;
}

ProbeOptions ProbeOptions::from_params() {
  const Params& p = Params::global();
  ProbeOptions o;
  o.budget_s = p.get_real("TAMOE_PROBE_BUDGET_S");
  o.max_pairs_per_class = static_cast<int>(p.get_int("TAMOE_PROBE_MAX_PAIRS"));
  o.iters = static_cast<int>(p.get_int("TAMOE_PROBE_ITERS"));
  o.max_bytes = p.get_int("TAMOE_PROBE_MAX_BYTES");
  o.concurrent_bytes = std::min<int64_t>(o.max_bytes, 4 << 20);
  o.seed = static_cast<uint64_t>(p.get_int("TAMOE_SEED"));
  return o;
}

ProbeResult run_probe(const Cluster& c, const ProbeOptions& o, ProbeTransport& tr) {
  MPI_Comm comm = c.world();
  const int me = c.rank();
  if (o.iters < 1 || o.min_bytes < 1 || o.max_bytes < o.min_bytes || o.max_bytes > (1LL << 30) ||
      o.budget_s <= 0)
    fail(Status::invalid_argument, "probe options",
         "iters >= 1, 1 <= min_bytes <= max_bytes <= 1 GiB, budget > 0",
         str("iters=", o.iters, " min_bytes=", o.min_bytes, " max_bytes=", o.max_bytes,
             " budget_s=", o.budget_s));
  ProbeResult res;
  const double t_start = now();
  const std::vector<int64_t> sizes = sweep_sizes(o);
  res.transport = tr.name();
  {
    int cores = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
    int on_host = 0;
    for (int r = 0; r < c.size(); ++r) on_host += c.host_of(r) == c.host() ? 1 : 0;
    if (on_host > cores && c.local_rank() == 0 && c.node() == 0) {
      TAMOE_LOGF(warn, "probe")
          << on_host << " ranks share " << cores
          << " cores on this host: concurrent probes measure time-shared cores";
    }
  }
  res.receiver_cpu_copies = tr.receiver_cpu_copies();

  // 1. Ping-pong sweeps. Rank 0 decides for everyone when the budget (70% of it here) runs out.
  auto classes = sample_pairs(c, o.max_pairs_per_class, o.seed);
  size_t total_pairs = 0;
  for (auto& [name, pairs] : classes) total_pairs += pairs.size();
  progress(
      o, me,
      str(c.describe(), "; ping-pong over ", total_pairs, " sampled pairs in ", classes.size(),
          " classes, sizes ", sizes.front(), "..", sizes.back(), " B, budget ", o.budget_s, " s"));
  size_t done_pairs = 0;
  for (auto& [name, pairs] : classes) {
    // times[p * nsizes + s], filled by the pair's first rank, summed over ranks afterwards.
    std::vector<double> times(pairs.size() * sizes.size(), 0.0);
    size_t measured = 0;
    for (size_t p = 0; p < pairs.size(); ++p) {
      int go = (now() - t_start) < 0.7 * o.budget_s || p == 0 ? 1 : 0;
      MPI_Bcast(&go, 1, MPI_INT, 0, comm);
      if (!go) {
        res.budget_exhausted = true;
        break;
      }
      for (size_t s = 0; s < sizes.size(); ++s) {
        int iters = sizes[s] > (256 << 10) ? std::max(3, o.iters / 4) : o.iters;
        times[p * sizes.size() + s] =
            ping_pong(tr, me, pairs[p].first, pairs[p].second, sizes[s], iters);
      }
      ++measured;
      ++done_pairs;
      if (total_pairs >= 8 && done_pairs % std::max<size_t>(1, total_pairs / 8) == 0)
        progress(o, me, str("  ", done_pairs, "/", total_pairs, " pairs, ", now() - t_start, " s"));
    }
    MPI_Allreduce(MPI_IN_PLACE, times.data(), static_cast<int>(times.size()), MPI_DOUBLE, MPI_SUM,
                  comm);
    ProbeClassResult r;
    r.name = name;
    r.pairs.assign(pairs.begin(), pairs.begin() + measured);
    for (size_t s = 0; s < sizes.size(); ++s) {
      std::vector<double> col;
      for (size_t p = 0; p < measured; ++p) col.push_back(times[p * sizes.size() + s]);
      r.points.push_back({sizes[s], median(col)});
    }
    if (measured > 0) {
      r.fit = fit_alpha_beta(r.points);
      res.classes.push_back(r);
    }
  }

  // 2. Concurrent probes: every rank at once sends to all ranks of its node (the node fabric
  // under an alltoall's load), then to all ranks of other nodes (the shared uplinks). Size sweeps
  // from 4 KiB up to concurrent_bytes per pair: fitted like the ping-pong ones, and kept point by
  // point as bandwidth-by-size curves.
  const int iters_c = std::max(5, o.iters / 2);
  std::vector<int64_t> csizes;
  for (int64_t b = std::min<int64_t>(4 << 10, o.concurrent_bytes); b < o.concurrent_bytes; b *= 4)
    csizes.push_back(b);
  csizes.push_back(o.concurrent_bytes);
  std::vector<int> node_peers, off_peers;
  for (int r = 0; r < c.size(); ++r) {
    if (r == me) continue;
    (c.node_of(r) == c.node() ? node_peers : off_peers).push_back(r);
  }
  // Per-rank bandwidth each way = bytes * peers / time, fitted over the sweep.
  auto sweep = [&](const std::vector<int>& peers, double* bw, double* alpha,
                   std::vector<std::pair<double, double>>* curve) {
    int npeers = static_cast<int>(peers.size());
    MPI_Allreduce(MPI_IN_PLACE, &npeers, 1, MPI_INT, MPI_MAX, comm);
    std::vector<ProbePoint> pts;
    for (int64_t b : csizes) {
      double t = concurrent(comm, tr, peers, b, iters_c);
      if (t <= 0) return;
      pts.push_back({b * npeers, t});
    }
    if (pts.size() >= 2) {
      AlphaBetaFit f = fit_alpha_beta(pts);
      *bw = f.bw_bytes_per_s;
      *alpha = f.alpha_s;
      // The curve is indexed by the bytes a rank moves in the exchange (working set) and is net
      // of the fitted per-exchange latency, which the model's latency term
      // already counts; at least a quarter of each time is kept as transfer time.
      for (const auto& pt : pts)
        curve->push_back(
            {static_cast<double>(pt.bytes),
             static_cast<double>(pt.bytes) / std::max(pt.seconds - f.alpha_s, 0.25 * pt.seconds)});
    } else {
      *bw = static_cast<double>(pts[0].bytes) / pts[0].seconds;
    }
  };
  sweep(node_peers, &res.node_concurrent_bw, &res.node_concurrent_alpha_s,
        &res.node_concurrent_curve);
  sweep(off_peers, &res.offnode_concurrent_bw, &res.offnode_concurrent_alpha_s,
        &res.offnode_concurrent_curve);
  {
    std::vector<double> t;
    for (int it = -1; it < iters_c; ++it) {
      MPI_Barrier(comm);
      double dt = tr.copy(o.concurrent_bytes);
      MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, comm);
      if (it >= 0) t.push_back(dt);
    }
    res.copy_concurrent_bw = static_cast<double>(o.concurrent_bytes) / median(t);
  }
  {
    // A uniform alltoall of 8-byte messages: how much of the per-message latency overlaps.
    std::vector<int> all;
    for (int r = 0; r < c.size(); ++r)
      if (r != me) all.push_back(r);
    res.small_alltoall_s = concurrent(comm, tr, all, 8, o.iters);
  }
  progress(o, me,
           str("concurrent: node ", res.node_concurrent_bw / 1e9, " GB/s, off-node ",
               res.offnode_concurrent_bw / 1e9, " GB/s, copy ", res.copy_concurrent_bw / 1e9,
               " GB/s per rank"));
  res.elapsed_s = now() - t_start;
  MPI_Bcast(&res.elapsed_s, 1, MPI_DOUBLE, 0, comm);
  return res;
}

ProbeResult run_probe(const Cluster& c, const ProbeOptions& o) {
  auto tr = make_mpi_transport(
      c.world(), std::max(o.max_bytes, o.concurrent_bytes) * std::max(1, c.size() - 1));
  return run_probe(c, o, *tr);
}

double measure_alltoallv(MPI_Comm comm, const std::vector<double>& traffic, int iters) {
  int me = 0, P = 0;
  MPI_Comm_rank(comm, &me);
  MPI_Comm_size(comm, &P);
  if (traffic.size() != static_cast<size_t>(P) * P)
    fail(Status::invalid_argument, "measure_alltoallv", str("a ", P, "x", P, " traffic matrix"),
         str(traffic.size(), " entries"));
  std::vector<int> sc(P), sd(P), rc(P), rd(P);
  int64_t stot = 0, rtot = 0;
  for (int j = 0; j < P; ++j) {
    sc[j] = static_cast<int>(traffic[static_cast<size_t>(me) * P + j]);
    rc[j] = static_cast<int>(traffic[static_cast<size_t>(j) * P + me]);
    sd[j] = static_cast<int>(stot);
    rd[j] = static_cast<int>(rtot);
    stot += sc[j];
    rtot += rc[j];
  }
  if (stot > INT32_MAX || rtot > INT32_MAX)
    fail(Status::invalid_argument, "measure_alltoallv", "at most 2 GiB per rank",
         str(stot, " bytes"));
  std::vector<char> sbuf(std::max<int64_t>(1, stot), 1), rbuf(std::max<int64_t>(1, rtot));
  std::vector<double> t;
  for (int it = -1; it < iters; ++it) {
    MPI_Barrier(comm);
    double t0 = now();
    MPI_Alltoallv(sbuf.data(), sc.data(), sd.data(), MPI_BYTE, rbuf.data(), rc.data(), rd.data(),
                  MPI_BYTE, comm);
    double dt = now() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, comm);
    if (it >= 0) t.push_back(dt);
  }
  return median(t);
}

}  // namespace tamoe::topo
