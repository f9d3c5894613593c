#include "bench/common/bench_util.h"

#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "runtime/error.h"

namespace tamoe::bench {

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(i > 0 ? i - 1 : 0, v.size() - 1)];
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

TimeStats time_stats(const std::vector<double>& seconds, double size_bytes, int ranks) {
  TimeStats s;
  s.avg_s = mean(seconds);
  s.p50_s = percentile(seconds, 0.5);
  s.p99_s = percentile(seconds, 0.99);
  s.algbw_gbps = s.p50_s > 0 ? size_bytes / s.p50_s / 1e9 : 0;
  s.busbw_gbps = s.algbw_gbps * (ranks - 1) / ranks;
  return s;
}

nlohmann::json time_stats_json(const TimeStats& s, size_t iters) {
  return {{"iters", iters},
          {"time_avg_us", s.avg_s * 1e6},
          {"time_p50_us", s.p50_s * 1e6},
          {"time_p99_us", s.p99_s * 1e6},
          {"algbw_gbps", s.algbw_gbps},
          {"busbw_gbps", s.busbw_gbps}};
}

std::optional<int> parse_cli(CLI::App& app, int argc, char** argv, int rank) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (rank == 0) app.exit(e);
    return e.get_exit_code();
  }
  return std::nullopt;
}

}  // namespace tamoe::bench
