// Traffic matrices (bytes, P*P, row = sender) used to check the cost model and to drive benches.
#pragma once

#include <string>
#include <vector>

#include "topology/cost_model.h"

namespace tamoe::topo {

// "uniform": every pair gets `bytes`.
// "ladder": each rank sends `near_weight` times more to ranks of its own node (self included) than
//           to other ranks, same row total as uniform (the shape a topology-aware plan produces).
// "zipf": rank i's destinations ranked by (j - i) mod P get weights 1/(1+k)^s with s = 1, same
//         row total; columns are not balanced (a skewed gate).
// Throws tamoe::Error for an unknown name.
std::vector<double> traffic_pattern(const CostModel& model, const std::string& name, double bytes,
                                    double near_weight = 3.0);
const std::vector<std::string>& traffic_pattern_names();

}  // namespace tamoe::topo
