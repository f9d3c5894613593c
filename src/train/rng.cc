#include "train/rng.h"

#include <cmath>
#include <numbers>
#include <sstream>

#include "runtime/error.h"

namespace tamoe::train {

double Rng::normal() {
  // 1 - u lies in (0, 1], so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t Rng::below(uint64_t n) {
  if (n == 0) fail(Status::invalid_argument, "Rng::below", "n >= 1", "0");
  // Reject the top partial bucket so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % n + 1) % n;
  uint64_t x = engine_();
  while (x > limit) x = engine_();
  return x % n;
}

std::string Rng::state() const {
  std::ostringstream os;
  os << engine_;
  return os.str();
}

void Rng::set_state(const std::string& text) {
  std::istringstream is(text);
  std::mt19937_64 e;
  is >> e;
  if (is.fail()) {
    fail(Status::invalid_input, "Rng::set_state", "a std::mt19937_64 state (312 numbers)",
         str("text of ", text.size(), " characters that does not parse"));
  }
  std::string rest;
  is >> rest;
  if (!rest.empty())
    fail(Status::invalid_input, "Rng::set_state", "nothing after the 312 numbers",
         str("'", rest.substr(0, 32), "'"));
  engine_ = e;
}

}  // namespace tamoe::train
