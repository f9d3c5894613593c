// The all-to-all algorithm override string (TAMOE_A2A_ALGO), parsed once and matched per call.
//
// Grammar (whitespace around tokens ignored, names case-sensitive):
//   spec  := "auto" | rule ("," rule)*
//   rule  := ALGO | ALGO "@" LO "-" [HI]
//   ALGO  := auto | mpi | pairwise | hier | hier_inter_first      (device: nccl names, see docs)
//   LO,HI := byte counts as tamoe::parse_bytes reads them ("0", "4096", "4K", "1M")
// A rule without a range matches every call. Ranges are half-open [LO, HI) over the mean bytes
// per rank pair of the call (total bytes / P^2); an empty HI is unbounded. The first matching
// rule wins; no matching rule, or the rule "auto", means "let the cost model choose".
// Examples: "hier", "hier@0-4K,mpi@4K-", "pairwise@0-64K".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tamoe::coll {

struct AlgoRule {
  std::string algo;  // a name from the grammar
  int64_t lo_bytes = 0;
  int64_t hi_bytes = -1;  // -1: unbounded
};

struct AlgoSpec {
  std::vector<AlgoRule> rules;  // empty: auto
  // The algorithm forced for a call whose mean bytes per pair is `pair_bytes`, or "auto".
  std::string pick(double pair_bytes) const;
  std::string to_string() const;
};

// Throws tamoe::Error (invalid_input) naming `where`, the bad token and what was expected.
// `known` lists the accepted algorithm names (besides "auto").
AlgoSpec parse_algo_spec(const std::string& text, const std::vector<std::string>& known,
                         const std::string& where = "TAMOE_A2A_ALGO");

}  // namespace tamoe::coll
