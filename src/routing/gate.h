// The MoE gate on the host: scores, top-k (with the loss-free bias), node-limited routing,
// per-destination capacity with drop / reroute / dropless overflow, and the counts a dispatch
// needs. This is the reference the CUDA kernels (kernels/gate_kernels.h) must reproduce exactly.
//
// Determinism contract (the CUDA path follows the same rules, see docs/routing.md):
//  - selection key of (token t, expert e) = logits(t,e) + bias(e), one float addition;
//  - top-k orders keys descending, ties go to the lower expert index;
//  - node limit: a node's group score is the float sum, from 0 and in descending key order, of
//    the node's top-g keys (g = node_score_top, at most the node's expert count); the M nodes with
//    the highest group score are allowed (ties: lower node index); top-k runs over their experts;
//  - drop_lowest: per destination rank the copies are ordered by score descending, ties by
//    token then slot ascending; the first capacity[rank] are kept;
//  - reroute: tokens in ascending order, each token's slots in ascending order. A slot whose
//    rank has room keeps its expert; otherwise it moves to the expert with the highest key that
//    the token does not already use, whose rank still has room and (with a node limit) lies on
//    one of the token's allowed nodes; if there is none the copy is dropped.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

namespace tamoe::route {

using MatrixRf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixRd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixRi = Eigen::Matrix<int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixRb = Eigen::Matrix<uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Where the N = P*E global experts live. Expert e lives on rank e / E; rank r on node_of_rank[r].
struct ExpertLayout {
  int experts_per_rank = 1;       // E
  std::vector<int> node_of_rank;  // size P, node ids 0..num_nodes()-1

  int num_ranks() const { return static_cast<int>(node_of_rank.size()); }
  int num_experts() const { return experts_per_rank * num_ranks(); }
  int num_nodes() const;
  int rank_of(int expert) const { return expert / experts_per_rank; }
  int node_of_expert(int expert) const { return node_of_rank[rank_of(expert)]; }

  // P ranks, E experts per rank, `ranks_per_node` consecutive ranks per node.
  static ExpertLayout regular(int ranks, int experts_per_rank, int ranks_per_node);
};

// Throws tamoe::Error naming the bad field (E < 1, no ranks, negative or gapped node ids).
void validate(const ExpertLayout& layout);

enum class ScoreFn { softmax, sigmoid };
enum class Overflow {
  drop_lowest,  // over-capacity copies with the lowest score are dropped
  reroute,      // over-capacity copies move to the next expert with room (token order)
  dropless,     // no capacity: every top-k copy is kept, buffers are sized from the counts
};

struct GateOptions {
  int k = 2;
  ScoreFn score = ScoreFn::softmax;
  // Divide each token's kept combine weights by their sum (after capacity).
  bool normalize = false;
  // Node-limited routing: a token's k experts lie on at most max_nodes nodes (0: no limit).
  int max_nodes = 0;
  int node_score_top = 2;  // g in the group score
  Overflow overflow = Overflow::drop_lowest;
  // Token-copies this rank may send to each destination rank (size P), e.g. from a plan via
  // capacity_from_plan(). When empty, every rank gets ceil(capacity_factor * S * k / P).
  std::vector<int64_t> capacity_per_rank;
  double capacity_factor = 1.0;
};

// Validates options against the layout (k in 1..N, node limit feasible, capacity size/sign).
void validate(const GateOptions& options, const ExpertLayout& layout);

// ceil(cf * tokens * k / P) for every rank.
std::vector<int64_t> uniform_capacity(int64_t tokens, int k, int ranks, double capacity_factor);
// C_j = ceil(cf * tokens * k * X_ij) from this rank's row of the dispatch matrix (size P).
std::vector<int64_t> capacity_from_plan(const std::vector<double>& plan_row, int64_t tokens, int k,
                                        double capacity_factor);
// The capacity that `options` gives each of P ranks for `tokens` tokens (-1 means unbounded).
std::vector<int64_t> effective_capacity(const GateOptions& options, int64_t tokens, int ranks);

// Stage 1: scores and top-k selection (no capacity).
struct TopK {
  MatrixRi expert;  // S x k, slot order = key descending
  MatrixRf score;   // S x k, the expert's score (softmax probability or sigmoid), bias-free
  std::vector<int64_t> expert_count;  // N, top-k assignments per expert (before capacity)
};

// logits: S x N (token-major). bias: size N, or empty for none; it changes selection only.
// Throws tamoe::Error naming token and expert for a NaN/Inf logit (and expert for bias).
TopK select_topk(const MatrixRf& logits, const Eigen::VectorXf& bias, const ExpertLayout& layout,
                 const GateOptions& options);

// Stage 2 result: the routing a dispatch consumes.
struct Routing {
  MatrixRi expert;   // S x k final expert, -1 where dropped
  MatrixRf weight;   // S x k combine weight, 0 where dropped
  MatrixRb dropped;  // S x k, 1 where dropped
  int64_t num_dropped = 0;
  int64_t num_rerouted = 0;
  std::vector<int64_t> expert_count;  // N, kept copies per expert
  std::vector<int64_t> rank_count;    // P, kept copies per destination rank
  std::vector<int64_t> capacity;      // P, capacity used (-1: dropless)
};

// Applies capacity and the overflow policy to a top-k selection. logits/bias are the ones the
// selection came from (reroute needs the other experts' keys and scores).
Routing apply_capacity(const TopK& topk, const MatrixRf& logits, const Eigen::VectorXf& bias,
                       const ExpertLayout& layout, const GateOptions& options);

// select_topk + apply_capacity.
Routing route(const MatrixRf& logits, const Eigen::VectorXf& bias, const ExpertLayout& layout,
              const GateOptions& options);

// Share of top-k assignments per expert (the f of the balancing losses; sums to 1, or all zero
// for no tokens).
Eigen::VectorXd assignment_share(const std::vector<int64_t>& expert_count);

// Throws tamoe::Error naming the first NaN/Inf (token, expert).
void check_finite(const MatrixRf& logits, const char* where);

}  // namespace tamoe::route
