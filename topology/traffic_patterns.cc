#include "topology/traffic_patterns.h"

#include <cmath>

#include "runtime/error.h"

namespace tamoe::topo {

const std::vector<std::string>& traffic_pattern_names() {
  static const std::vector<std::string> names = {"uniform", "ladder", "zipf"};
  return names;
}

std::vector<double> traffic_pattern(const CostModel& m, const std::string& name, double bytes,
                                    double near_weight) {
  const int P = m.nranks();
  std::vector<double> D(static_cast<size_t>(P) * P, 0.0);
  std::vector<double> w(P);
  for (int i = 0; i < P; ++i) {
    if (name == "uniform") {
      for (int j = 0; j < P; ++j) w[j] = 1;
    } else if (name == "ladder") {
      for (int j = 0; j < P; ++j) w[j] = m.pair_level(i, j) <= 1 ? near_weight : 1.0;
    } else if (name == "zipf") {
      for (int j = 0; j < P; ++j) w[j] = 1.0 / (1.0 + ((j - i + P) % P));
    } else {
      std::string all;
      for (const auto& n : traffic_pattern_names()) all += (all.empty() ? "" : ", ") + n;
      fail(Status::invalid_argument, "traffic pattern", "one of " + all, "'" + name + "'");
    }
    double s = 0;
    for (double x : w) s += x;
    for (int j = 0; j < P; ++j)
      D[static_cast<size_t>(i) * P + j] = std::round(bytes * P * w[j] / s);
  }
  return D;
}

}  // namespace tamoe::topo
