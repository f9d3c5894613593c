// All-to-all(v) behind one algorithm interface (DESIGN.md section 4).
//
// Every call first exchanges counts (exchange_counts): each rank's send row and expected receive
// column are gathered on every rank, so all ranks see the whole P x P matrix, check it before any
// data moves (a disagreement throws the same tamoe::Error on every rank, naming both ranks), and
// pick the same algorithm from the same numbers. The O(P^2) count matrix is the price; it is
// small next to the data for the rank counts of one expert-parallel group.
//
// Algorithms: "mpi" (MPI_Alltoallv), "pairwise" (nonblocking Isend/Irecv with a rotating peer
// order), "hier" (intra-node phase on the node communicator, then inter-node on the rail
// communicator) and "hier_inter_first" (the reverse order). Selection per call: the override
// (TAMOE_A2A_ALGO or AllToAllOptions::algo, see algo_spec.h), else the lowest cost-model estimate
// among the algorithms the layout supports, else (no model) "mpi".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "collectives/algo_spec.h"
#include "collectives/groups.h"
#include "topology/cost_model.h"

namespace tamoe::coll {

// Counts in elements, row-major: at(i, j) elements go from rank i to rank j.
struct CountMatrix {
  int P = 0;
  std::vector<int64_t> c;
  int64_t at(int i, int j) const { return c[static_cast<size_t>(i) * P + j]; }
  int64_t total() const;
  std::vector<double> bytes(int64_t elem_bytes) const;  // the traffic matrix for the cost model
  double mean_pair_bytes(int64_t elem_bytes) const;     // total bytes / P^2
};

// Collective over g.world(). sendcounts[j]: elements this rank sends to j; recvcounts[j]:
// elements it expects from j, or nullptr to accept whatever the senders say. Throws
// Status::mismatch on every rank when any rank's expectation disagrees with its sender,
// "rank i sends n elements to rank j but rank j expects m", and invalid_argument on a negative
// count (naming the rank and destination).
CountMatrix exchange_counts(const Groups& g, const int64_t* sendcounts, const int64_t* recvcounts);

// Packed displacements of a count vector (exclusive prefix sum).
std::vector<int64_t> packed_displs(const int64_t* counts, int n);

// Host buffers. Displacements in elements; nullptr means packed in rank order.
struct HostBuffers {
  const void* send = nullptr;
  void* recv = nullptr;
  int64_t elem_bytes = 1;
  const int64_t* sdispls = nullptr;
  const int64_t* rdispls = nullptr;
};

class Algorithm {
 public:
  virtual ~Algorithm() = default;
  virtual std::string name() const = 0;
  // Whether this layout can run the algorithm; `why` gets the reason when it cannot.
  virtual bool supports(const Groups& g, std::string* why) const = 0;
  // Modeled seconds for the traffic matrix `bytes` (P*P, row = sender); model ranks == g ranks.
  virtual double estimate(const topo::CostModel& m, const Groups& g,
                          const std::vector<double>& bytes) const = 0;
};

class HostAlgorithm : public Algorithm {
 public:
  // Collective over g; counts from exchange_counts.
  virtual void run(const Groups& g, const CountMatrix& counts, const HostBuffers& b) = 0;
};

// The two phase traffic matrices of a hierarchical exchange (phase 1 on the node communicator
// for intra-first, on the rail for inter-first). Shared by the host and device algorithms.
void hier_phase_traffic(const Groups& g, const std::vector<double>& bytes, bool inter_first,
                        std::vector<double>* phase1, std::vector<double>* phase2);
double hier_estimate(const topo::CostModel& m, const Groups& g, const std::vector<double>& bytes,
                     bool inter_first);
bool hier_supports(const Groups& g, std::string* why);

// Picks among `algos` for one call (same result on every rank): the override for this size,
// else the cheapest estimate, else the first supported. Throws invalid_argument when the override
// names an algorithm the layout does not support (with the reason) or one not in `algos`.
size_t select_algorithm(const std::vector<const Algorithm*>& algos, const Groups& g,
                        const CountMatrix& counts, int64_t elem_bytes, const topo::CostModel* model,
                        const AlgoSpec& spec, std::string* reason = nullptr);

struct AllToAllOptions {
  const topo::CostModel* model = nullptr;  // not owned; nullptr: no estimates, "mpi" by default
  std::string algo;                        // override string; empty: TAMOE_A2A_ALGO
};

struct RunInfo {
  std::string algo;    // the algorithm that ran
  std::string reason;  // why it was chosen
};

// The host all-to-all(v) on MPI. Not thread-safe (keeps scratch buffers between calls).
class AllToAll {
 public:
  // `g` and the model must outlive this object.
  explicit AllToAll(const Groups& g, AllToAllOptions opts = {});
  ~AllToAll();
  AllToAll(const AllToAll&) = delete;
  AllToAll& operator=(const AllToAll&) = delete;

  // Collective: count exchange + check, selection, data. Counts and displacements in elements.
  RunInfo run(const void* send, const int64_t* sendcounts, const int64_t* sdispls, void* recv,
              const int64_t* recvcounts, const int64_t* rdispls, int64_t elem_bytes);
  // Collective, counts already exchanged (every rank passes the same matrix).
  RunInfo run(const CountMatrix& counts, const HostBuffers& b);
  // Runs a named algorithm (benchmarks, tests); throws if unknown or unsupported.
  RunInfo run_named(const std::string& algo, const CountMatrix& counts, const HostBuffers& b);

  const Groups& groups() const { return g_; }
  static const std::vector<std::string>& algorithm_names();

 private:
  const Groups& g_;
  AllToAllOptions opts_;
  AlgoSpec spec_;
  std::vector<std::unique_ptr<HostAlgorithm>> algos_;
};

// The host algorithms, fresh instances ("mpi", "pairwise", "hier", "hier_inter_first").
std::vector<std::unique_ptr<HostAlgorithm>> make_host_algorithms();

}  // namespace tamoe::coll
