// What the benchmark programs share: the MPI main around a bench's run function, command-line
// parsing where rank 0 speaks for all, and the timing statistics of nccl-tests style rows.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

namespace CLI {
class App;
}

namespace tamoe::bench {

// Nearest-rank percentile: the ceil(q * n)-th smallest value (the lower median at q = 0.5); 0 when
// empty.
double percentile(std::vector<double> v, double q);

// Arithmetic mean; 0 when empty.
double mean(const std::vector<double>& v);

// One timed row: seconds per iteration (max over ranks) and the bytes each iteration moved.
struct TimeStats {
  double avg_s = 0, p50_s = 0, p99_s = 0;
  double algbw_gbps = 0;  // size_bytes / p50
  double busbw_gbps = 0;  // algbw * (P-1)/P, so that rank counts compare (0 with one rank)
};
TimeStats time_stats(const std::vector<double>& seconds, double size_bytes, int ranks);

// The JSON Lines fields of a TimeStats row: iters, time_{avg,p50,p99}_us, algbw_gbps, busbw_gbps.
nlohmann::json time_stats_json(const TimeStats& s, size_t iters);

// Parses the command line. On --help or a parse error rank 0 prints what CLI11 prints (every rank
// sees the same arguments) and the exit code comes back; nullopt when the bench should run.
std::optional<int> parse_cli(CLI::App& app, int argc, char** argv, int rank);

}  // namespace tamoe::bench
