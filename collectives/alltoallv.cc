#include "collectives/alltoallv.h"

#include <limits>

#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/params.h"

namespace tamoe::coll {

int64_t CountMatrix::total() const {
  int64_t t = 0;
  for (int64_t v : c) t += v;
  return t;
}

std::vector<double> CountMatrix::bytes(int64_t elem_bytes) const {
  std::vector<double> d(c.size());
  for (size_t i = 0; i < c.size(); ++i) d[i] = static_cast<double>(c[i] * elem_bytes);
  return d;
}

double CountMatrix::mean_pair_bytes(int64_t elem_bytes) const {
  if (P == 0) return 0;
  return static_cast<double>(total()) * static_cast<double>(elem_bytes) /
         (static_cast<double>(P) * P);
}

CountMatrix exchange_counts(const Groups& g, const int64_t* sendcounts, const int64_t* recvcounts) {
  const int P = g.size();
  // Row i of `both`: rank i's send row, then its expected receive column (-1: accept any).
  std::vector<int64_t> mine(2 * static_cast<size_t>(P)), both(2 * static_cast<size_t>(P) * P);
  for (int j = 0; j < P; ++j) {
    mine[j] = sendcounts[j];
    mine[P + j] = recvcounts ? recvcounts[j] : -1;
  }
  TAMOE_CHECK_MPI(
      MPI_Allgather(mine.data(), 2 * P, MPI_INT64_T, both.data(), 2 * P, MPI_INT64_T, g.world()));
  // Every rank checks the same numbers in the same order, so all throw the same error together.
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) {
      int64_t n = both[static_cast<size_t>(i) * 2 * P + j];
      if (n < 0)
        fail(Status::invalid_argument, str("all-to-all counts of rank ", i, " for rank ", j),
             "a count >= 0", str(n));
    }
  CountMatrix m;
  m.P = P;
  m.c.resize(static_cast<size_t>(P) * P);
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) m.c[static_cast<size_t>(i) * P + j] = both[i * 2 * P + j];
  for (int j = 0; j < P; ++j)
    for (int i = 0; i < P; ++i) {
      int64_t expect = both[static_cast<size_t>(j) * 2 * P + P + i];
      if (expect >= 0 && expect != m.at(i, j))
        fail(Status::mismatch, str("all-to-all count exchange (seen on rank ", g.rank(), ")"),
             str("rank ", j, " to expect the ", m.at(i, j), " elements rank ", i, " sends to it"),
             str("rank ", i, " sends ", m.at(i, j), " elements to rank ", j, " but rank ", j,
                 " expects ", expect));
    }
  return m;
}

void hier_phase_traffic(const Groups& g, const std::vector<double>& bytes, bool inter_first,
                        std::vector<double>* phase1, std::vector<double>* phase2) {
  const int P = g.size();
  phase1->assign(static_cast<size_t>(P) * P, 0);
  phase2->assign(static_cast<size_t>(P) * P, 0);
  for (int s = 0; s < P; ++s)
    for (int d = 0; d < P; ++d) {
      double b = bytes[static_cast<size_t>(s) * P + d];
      if (b == 0) continue;
      int hop = inter_first ? g.rank_of(g.node_of(d), g.local_of(s))
                            : g.rank_of(g.node_of(s), g.local_of(d));
      (*phase1)[static_cast<size_t>(s) * P + hop] += b;
      (*phase2)[static_cast<size_t>(hop) * P + d] += b;
    }
}

bool hier_supports(const Groups& g, std::string* why) {
  if (!g.uniform()) {
    if (why) *why = str("needs the same number of ranks on every node; layout is ", g.describe());
    return false;
  }
  return true;
}

double hier_estimate(const topo::CostModel& m, const Groups& g, const std::vector<double>& bytes,
                     bool inter_first) {
  std::vector<double> p1, p2;
  hier_phase_traffic(g, bytes, inter_first, &p1, &p2);
  double t = m.predict_seconds(p1) + m.predict_seconds(p2);
  // Three staging copies of this rank's data (pack, re-pack at the hop, unpack), where the model
  // knows the memory copy bandwidth.
  if (m.self_bw_gbps() > 0) {
    const int P = g.size();
    double most = 0;
    for (int i = 0; i < P; ++i) {
      double row = 0;
      for (int j = 0; j < P; ++j) row += bytes[static_cast<size_t>(i) * P + j];
      most = std::max(most, row);
    }
    t += 3 * most / (m.self_bw_gbps() * 1e9);
  }
  return t;
}

size_t select_algorithm(const std::vector<const Algorithm*>& algos, const Groups& g,
                        const CountMatrix& counts, int64_t elem_bytes, const topo::CostModel* model,
                        const AlgoSpec& spec, std::string* reason) {
  std::string forced = spec.pick(counts.mean_pair_bytes(elem_bytes));
  if (forced != "auto") {
    for (size_t i = 0; i < algos.size(); ++i) {
      if (algos[i]->name() != forced) continue;
      std::string why;
      if (!algos[i]->supports(g, &why))
        fail(Status::invalid_argument, str("all-to-all algorithm override \"", forced, "\""),
             "a layout the forced algorithm supports", why);
      if (reason) *reason = str("override ", spec.to_string());
      return i;
    }
    std::string names;
    for (auto* a : algos) names += (names.empty() ? "" : ", ") + a->name();
    fail(Status::invalid_argument, "all-to-all algorithm override", str("one of: ", names),
         str("\"", forced, "\""));
  }
  std::vector<double> bytes;
  if (model) {
    if (model->nranks() != g.size())
      fail(Status::invalid_argument, "all-to-all cost model",
           str("a model of ", g.size(), " ranks"), str(model->nranks(), " ranks"));
    bytes = counts.bytes(elem_bytes);
  }
  size_t best = algos.size();
  double best_s = std::numeric_limits<double>::infinity();
  std::string skipped;
  for (size_t i = 0; i < algos.size(); ++i) {
    std::string why;
    if (!algos[i]->supports(g, &why)) {
      skipped += str("; ", algos[i]->name(), " unavailable: ", why);
      continue;
    }
    if (!model) {
      if (best == algos.size()) best = i;
      continue;
    }
    double s = algos[i]->estimate(*model, g, bytes);
    if (s < best_s) {
      best_s = s;
      best = i;
    }
  }
  if (best == algos.size())
    fail(Status::internal, "all-to-all selection", "a supported algorithm", "none" + skipped);
  if (!skipped.empty()) {
    TAMOE_LOGF(info, "coll") << "falling back to " << algos[best]->name() << skipped;
  }
  if (reason)
    *reason = model ? str("cost model ", best_s * 1e6, " us") + skipped
                    : "no cost model: first supported" + skipped;
  return best;
}

AllToAll::AllToAll(const Groups& g, AllToAllOptions opts)
    : g_(g), opts_(std::move(opts)), algos_(make_host_algorithms()) {
  std::string text =
      opts_.algo.empty() ? Params::global().get_string("TAMOE_A2A_ALGO") : opts_.algo;
  spec_ = parse_algo_spec(text, algorithm_names(),
                          opts_.algo.empty() ? "TAMOE_A2A_ALGO" : "AllToAllOptions::algo");
}

AllToAll::~AllToAll() = default;

const std::vector<std::string>& AllToAll::algorithm_names() {
  static const std::vector<std::string> names = {"mpi", "pairwise", "hier", "hier_inter_first"};
  return names;
}

RunInfo AllToAll::run(const void* send, const int64_t* sendcounts, const int64_t* sdispls,
                      void* recv, const int64_t* recvcounts, const int64_t* rdispls,
                      int64_t elem_bytes) {
  CountMatrix counts = exchange_counts(g_, sendcounts, recvcounts);
  return run(counts, HostBuffers{send, recv, elem_bytes, sdispls, rdispls});
}

RunInfo AllToAll::run(const CountMatrix& counts, const HostBuffers& b) {
  std::vector<const Algorithm*> list;
  for (auto& a : algos_) list.push_back(a.get());
  RunInfo info;
  size_t i = select_algorithm(list, g_, counts, b.elem_bytes, opts_.model, spec_, &info.reason);
  info.algo = algos_[i]->name();
  TAMOE_LOGF(debug, "coll") << "all-to-all: " << info.algo << " (" << info.reason << ")";
  algos_[i]->run(g_, counts, b);
  return info;
}

RunInfo AllToAll::run_named(const std::string& algo, const CountMatrix& counts,
                            const HostBuffers& b) {
  for (auto& a : algos_) {
    if (a->name() != algo) continue;
    std::string why;
    if (!a->supports(g_, &why))
      fail(Status::invalid_argument, str("all-to-all algorithm \"", algo, "\""),
           "a layout it supports", why);
    a->run(g_, counts, b);
    return RunInfo{algo, "named"};
  }
  fail(Status::invalid_argument, "AllToAll::run_named", "a host algorithm name",
       str("\"", algo, "\""));
}

}  // namespace tamoe::coll
