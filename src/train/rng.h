// The random source of training: std::mt19937_64 with distributions written out here, so a seed
// gives the same numbers with every standard library (std::*_distribution are implementation
// defined) and the whole state can be saved in a checkpoint.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace tamoe::train {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}

  uint64_t next() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  // Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal (Box-Muller; no spare value is kept, so the state is the engine alone).
  double normal();
  // Uniform integer in [0, n), unbiased (rejection). n >= 1.
  uint64_t below(uint64_t n);

  // The engine state as text (the standard's operator<< format); set_state() throws
  // tamoe::Error (invalid_input) on text that does not parse.
  std::string state() const;
  void set_state(const std::string& text);

  bool operator==(const Rng& other) const { return engine_ == other.engine_; }

 private:
  std::mt19937_64 engine_;
};

}  // namespace tamoe::train
