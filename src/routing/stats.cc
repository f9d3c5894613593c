#include "routing/stats.h"

#include <cmath>
#include <limits>

#include "runtime/error.h"

namespace tamoe::route {

double kl_divergence(const Eigen::VectorXd& p, const Eigen::VectorXd& q) {
  TAMOE_CHECK_ARG(p.size() == q.size(), "kl_divergence", str("sizes equal"),
                  str(p.size(), " vs ", q.size()));
  double kl = 0;
  for (Eigen::Index i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    TAMOE_CHECK_ARG(q[i] > 0, str("kl_divergence: q[", i, "]"), "> 0 where p > 0", str(q[i]));
    kl += p[i] * std::log(p[i] / q[i]);
  }
  return kl;
}

RoutingStats routing_stats(const Routing& r, const ExpertLayout& layout, int my_rank,
                           const Eigen::VectorXd& target) {
  validate(layout);
  TAMOE_CHECK_ARG(my_rank >= 0 && my_rank < layout.num_ranks(), "routing_stats: my_rank",
                  str("0..", layout.num_ranks() - 1), str(my_rank));
  const int n = layout.num_experts();
  TAMOE_CHECK_ARG(static_cast<int>(r.expert_count.size()) == n, "routing_stats: expert_count",
                  str("size ", n), str("size ", r.expert_count.size()));
  RoutingStats st;
  st.copies = static_cast<int64_t>(r.expert.size());
  st.dropped = r.num_dropped;
  st.rerouted = r.num_rerouted;
  st.kept = st.copies - st.dropped;
  int64_t on_rank = 0, in_node = 0, cross = 0;
  const int my_node = layout.node_of_rank[my_rank];
  for (int e = 0; e < n; ++e) {
    const int dest = layout.rank_of(e);
    const int64_t c = r.expert_count[e];
    if (dest == my_rank)
      on_rank += c;
    else if (layout.node_of_rank[dest] == my_node)
      in_node += c;
    else
      cross += c;
  }
  st.expert_share = assignment_share(r.expert_count);
  if (st.kept > 0) {
    const double kept = static_cast<double>(st.kept);
    st.share_on_rank = on_rank / kept;
    st.share_in_node = in_node / kept;
    st.share_cross_node = cross / kept;
  }
  st.drop_share = st.copies > 0 ? static_cast<double>(st.dropped) / st.copies : 0.0;
  if (target.size() == 0 || st.kept == 0)
    st.kl_to_target = std::numeric_limits<double>::quiet_NaN();
  else
    st.kl_to_target = kl_divergence(st.expert_share, target);
  return st;
}

std::string RoutingStats::to_string() const {
  return str("copies=", copies, " kept=", kept, " dropped=", dropped, " rerouted=", rerouted,
             " on_rank=", share_on_rank, " in_node=", share_in_node,
             " cross_node=", share_cross_node, " kl=", kl_to_target);
}

}  // namespace tamoe::route
