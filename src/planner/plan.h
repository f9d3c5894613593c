// The dispatch plan of DESIGN.md section 3: the matrix X (P x P) of the fractions of each rank's
// token-copies sent to the experts of each rank, with what routing needs from it (per-rank targets
// over global experts, per-destination capacities) and what a reader needs to judge it (predicted
// dispatch time against uniform routing, traffic share per topology level, KL from uniform).
//
// A plan is stored either dense (X explicitly, any planner mode) or as a "ladder": one value per
// topology level (self, node, leaf, remote), X_ij = value[level(i, j)], which is what the
// symmetry-reduced planner produces for regular hierarchies. The ladder form keeps a plan for
// 16,384 ranks small (no 2 GiB matrix); x(i, j) reads both forms.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace tamoe::plan {

inline constexpr int kLevels = 4;  // 0 self, 1 same node, 2 same leaf switch, 3 beyond
const char* level_name(int level);

// The MoE layer whose dispatch is planned.
struct MoeShape {
  int experts_per_rank = 1;        // E
  int64_t tokens_per_rank = 4096;  // S
  int top_k = 2;                   // k
  int64_t hidden = 4096;           // H
  int bytes_per_element = 2;       // bf16
  double capacity_factor = 1.25;   // cf; capacities C_ij = ceil(cf * S * k * X_ij)

  // V = S * k * H * bytes: the bytes one rank dispatches per step.
  double volume_bytes() const;
  // Throws tamoe::Error naming the field (zero experts, non-positive sizes, cf not finite > 0).
  void validate(const std::string& where = "MoE shape") const;
};

enum class Mode { lp, sym, sinkhorn, uniform };
const char* mode_name(Mode m);
Mode parse_mode(const std::string& s,
                const std::string& where);  // "lp", "sym", "sinkhorn", "uniform"

struct Metrics {
  double plan_seconds = 0;              // predicted dispatch time of the plan (bandwidth + latency)
  double plan_bw_seconds = 0;           // its bandwidth part (what the planner minimizes)
  double plan_lat_seconds = 0;          // its latency part
  double uniform_seconds = 0;           // predicted time of uniform routing X = 1/P
  double uniform_bw_seconds = 0;        // its bandwidth part
  double speedup = 1;                   // uniform_seconds / plan_seconds
  double bw_speedup = 1;                // uniform_bw_seconds / plan_bw_seconds (latency left out)
  std::array<double, kLevels> share{};  // fraction of all token-copies kept at each level
  std::array<double, kLevels> ladder{};  // mean X_ij over the pairs of each level (0 if none)
  std::array<int64_t, kLevels> pairs_per_row{};  // how many destinations each level has per rank
  double kl_from_uniform = 0;                    // (1/P) sum_i KL(X_i. || uniform), nats
};

struct Plan {
  int nranks = 0;
  MoeShape shape;
  Mode mode = Mode::uniform;
  double rho = 1;         // bound: X_ij <= rho / P
  double kl_budget = -1;  // when >= 0, the Sinkhorn plan was tuned to this KL (nats)
  double eps = 0;         // Sinkhorn temperature (relative to the largest route cost), 0 otherwise
  std::string source;     // where the cost model came from
  std::string solver;  // "clp, epigraph LP", "symmetry-reduced LP (clp)", "bounded sinkhorn", ...
  double solve_seconds = 0;
  int iterations = 0;

  // Dense storage: x[i*P + j]. Empty when the plan is a ladder.
  std::vector<double> x;
  // Ladder storage: X_ij = ladder_x[level(i, j)], level from node/leaf below.
  bool is_ladder = false;
  std::array<double, kLevels> ladder_x{};
  std::vector<int> node, leaf;  // per rank; the hierarchy the levels refer to

  Metrics metrics;

  int level(int i, int j) const;
  double at(int i, int j) const;  // X_ij for either storage
  // X as a dense P*P matrix (materializes a ladder; refuses above 8192 ranks).
  std::vector<double> dense() const;
  // t_i(e) = X_{i, rank(e)} / E over the P*E global experts.
  std::vector<double> target(int rank) const;
  // C_ij = ceil(cf * S * k * X_ij) token slots rank i reserves on rank j.
  int64_t capacity(int i, int j) const;
  std::vector<int64_t> capacity_row(int rank) const;

  // Checks marginals (1e-9 relative to 1 after storage rounding tolerance tol), bounds and
  // sizes; throws tamoe::Error naming the field.
  void validate(const std::string& where = "plan", double tol = 1e-9) const;
  // Throws Status::mismatch when the job's rank count (or experts per rank, if > 0) differs.
  void check_matches(int job_nranks, int job_experts_per_rank = 0,
                     const std::string& where = "plan") const;

  // JSON format "tamoe.plan" version 1. from_json validates and names the bad field.
  nlohmann::json to_json() const;
  static Plan from_json(const nlohmann::json& j, const std::string& where = "plan");
  void save(const std::string& path) const;
  static Plan load(const std::string& path);
};

// Fills shares, ladder profile, pairs per level and KL from the stored X (no cost model needed).
void compute_structure_metrics(Plan& p);
// KL of a dense X from uniform, as in Metrics::kl_from_uniform.
double kl_from_uniform(const std::vector<double>& x, int nranks);

}  // namespace tamoe::plan
