// The measurement loop of tamoe-bench-moe: per variant, per iteration, a gate step on fresh
// features (untimed), then the timed layer communication (handle create with its count exchange,
// dispatch, combine, combine backward, dispatch backward), a host check of every output, and the
// cost model's prediction for the traffic matrix the routing realized.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "bench/moe_layer/moe_plan.h"
#include "collectives/groups.h"
#include "topology/cost_model.h"

namespace tamoe::bench::moe {

struct VariantSpec {
  std::string id, name;
  bool ta = false;             // bias toward the plan's target (else toward uniform)
  std::string algo;            // all-to-all algorithm: "mpi" (flat) or "hier"
  bool plan_capacity = false;  // capacity_from_plan instead of ceil(cf S k / P)
};

struct BenchSetup {
  int64_t tokens = 1024, hidden = 256;
  int k = 2, experts_per_rank = 2;
  double capacity_factor = 1.25;
  int iters = 4, rounds = 3, warmup = 1;
  int bias_steps = 300, bias_batches = 4;
  double bias_rate = 5.0;
  uint64_t seed = 2024;
};

// Phases of one layer step, in order.
inline constexpr int kPhases = 5;
inline const char* const kPhaseNames[kPhases] = {"create", "dispatch", "combine", "combine_bwd",
                                                 "dispatch_bwd"};

struct VariantResult {
  VariantSpec spec;
  std::string algo_ran;         // as reported by the all-to-all
  std::vector<double> seconds;  // per iteration, slowest rank, whole step
  std::vector<double> phase_seconds[kPhases];
  std::vector<double> predicted;  // per iteration, the model for the realized matrix
  std::vector<double> realized;   // P*P, mean token-copies i -> j per iteration
  int64_t copies = 0, kept = 0, dropped = 0, cross_node = 0, wrong = 0;
  double kl_to_target = 0;  // mean over ranks, top-k share (before capacity) vs target
  double bias_kl_before = 0, bias_kl_after = 0;  // warm-up, mean over ranks
};

// Collective over g.world(): runs the variants interleaved (round-robin, `iters` each per
// round). Every rank returns the same results.
std::vector<VariantResult> run_variants(const coll::Groups& g, const topo::CostModel& model,
                                        const TaPlan& plan, const BenchSetup& s,
                                        const std::vector<VariantSpec>& variants);

double median(std::vector<double> v);

// Modeled seconds of one layer step (two dispatch-direction and two combine-direction
// all-to-alls) for a token-copy matrix (P*P), with `algo` "mpi" or "hier".
double predict_step(const topo::CostModel& model, const coll::Groups& g,
                    const std::vector<double>& copies, int64_t hidden, const std::string& algo);

void print_report(const coll::Groups& g, const topo::CostModel& model, const TaPlan& plan,
                  const BenchSetup& s, const std::vector<VariantResult>& results, double wall_s);
void write_jsonl(std::ostream& os, const coll::Groups& g, const topo::CostModel& model,
                 const TaPlan& plan, const BenchSetup& s,
                 const std::vector<VariantResult>& results);

}  // namespace tamoe::bench::moe
