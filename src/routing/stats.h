// Routing statistics of one step on one rank: where the kept token-copies go (this rank, another
// rank of this node, another node), how many were dropped, and how far the per-expert shares are
// from the target.
#pragma once

#include <Eigen/Core>
#include <string>

#include "routing/gate.h"

namespace tamoe::route {

struct RoutingStats {
  int64_t copies = 0;  // S * k
  int64_t kept = 0;
  int64_t dropped = 0;
  int64_t rerouted = 0;
  // Shares of the kept copies; the three sum to 1 (all 0 when nothing was kept).
  double share_on_rank = 0;      // destination == my_rank
  double share_in_node = 0;      // another rank on my node
  double share_cross_node = 0;   // a rank on another node
  double drop_share = 0;         // dropped / copies
  Eigen::VectorXd expert_share;  // N, kept copies per expert / kept
  // KL(expert_share || target) in nats; NaN when no target was given or nothing was kept.
  double kl_to_target = 0;

  std::string to_string() const;  // one line for logs
};

// target: size N distribution, or empty for none.
RoutingStats routing_stats(const Routing& routing, const ExpertLayout& layout, int my_rank,
                           const Eigen::VectorXd& target);

// KL(p || q) = sum p log(p/q) over p > 0; throws if q is 0 where p is not.
double kl_divergence(const Eigen::VectorXd& p, const Eigen::VectorXd& q);

}  // namespace tamoe::route
