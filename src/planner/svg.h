// Hand-written SVG for the planner's two pictures: the heat-map of X and the trade-off curve of
// predicted time against KL from uniform.
#pragma once

#include <string>
#include <vector>

#include "planner/plan.h"
#include "planner/planner.h"

namespace tamoe::plan {

// Heat-map of X with node boundaries; above 256 ranks each cell is a block mean (P/256 ranks a
// side). Color is X_ij * P (1 = uniform), white 0 to dark blue at the plan's maximum.
std::string heatmap_svg(const Plan& p);
// Predicted time (y, ms) against KL from uniform (x, nats); Sinkhorn points joined, uniform and
// LP marked.
std::string tradeoff_svg(const std::vector<TradeoffPoint>& points, const std::string& title);
// Writes text to a file; throws Status::system naming the path.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace tamoe::plan
