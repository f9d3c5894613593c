#include "collectives/groups.h"

#include <algorithm>
#include <map>
#include <utility>

#include "runtime/error.h"

namespace tamoe::coll {

Groups& Groups::operator=(Groups&& o) noexcept {
  if (this == &o) return *this;
  release();
  world_ = std::exchange(o.world_, MPI_COMM_NULL);
  node_ = std::exchange(o.node_, MPI_COMM_NULL);
  rail_ = std::exchange(o.rail_, MPI_COMM_NULL);
  owns_ = std::exchange(o.owns_, false);
  rank_ = o.rank_;
  size_ = o.size_;
  nnodes_ = o.nnodes_;
  uniform_ = o.uniform_;
  node_of_ = std::move(o.node_of_);
  local_of_ = std::move(o.local_of_);
  node_size_ = std::move(o.node_size_);
  rank_of_ = std::move(o.rank_of_);
  return *this;
}

Groups::~Groups() {
  release();
}

void Groups::release() noexcept {
  if (!owns_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (MPI_Comm* c : {&node_, &rail_, &world_})
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
  owns_ = false;
}

Groups Groups::from_cluster(const topo::Cluster& c) {
  Groups g;
  g.world_ = c.world();
  g.node_ = c.node_comm();
  g.rail_ = c.rail_comm();
  g.rank_ = c.rank();
  g.size_ = c.size();
  std::vector<int> node_of(c.size());
  for (int r = 0; r < c.size(); ++r) node_of[r] = c.node_of(r);
  g.finish(node_of);
  return g;
}

Groups Groups::from_nodes(MPI_Comm world, const std::vector<int>& node_of) {
  Groups g;
  g.owns_ = true;
  TAMOE_CHECK_MPI(MPI_Comm_dup(world, &g.world_));
  TAMOE_CHECK_MPI(MPI_Comm_rank(g.world_, &g.rank_));
  TAMOE_CHECK_MPI(MPI_Comm_size(g.world_, &g.size_));
  if (static_cast<int>(node_of.size()) != g.size_)
    fail(Status::invalid_argument, str("Groups::from_nodes on rank ", g.rank_),
         str(g.size_, " node ids (one per rank)"), str(node_of.size()));
  // Renumber nodes by their lowest world rank, as topo::Cluster does.
  std::map<int, int> ids;
  std::vector<int> dense(g.size_);
  for (int r = 0; r < g.size_; ++r)
    dense[r] = ids.emplace(node_of[r], static_cast<int>(ids.size())).first->second;
  g.finish(dense);
  int local = g.local_of_[g.rank_];
  TAMOE_CHECK_MPI(MPI_Comm_split(g.world_, dense[g.rank_], g.rank_, &g.node_));
  TAMOE_CHECK_MPI(MPI_Comm_split(g.world_, local, dense[g.rank_], &g.rail_));
  return g;
}

void Groups::finish(const std::vector<int>& node_of) {
  node_of_ = node_of;
  nnodes_ = 0;
  for (int n : node_of_) nnodes_ = std::max(nnodes_, n + 1);
  node_size_.assign(nnodes_, 0);
  local_of_.resize(size_);
  for (int r = 0; r < size_; ++r) local_of_[r] = node_size_[node_of_[r]]++;
  uniform_ =
      std::all_of(node_size_.begin(), node_size_.end(), [&](int s) { return s == node_size_[0]; });
  rank_of_.clear();
  if (uniform_) {
    rank_of_.assign(size_, -1);
    for (int r = 0; r < size_; ++r) rank_of_[node_of_[r] * ranks_per_node() + local_of_[r]] = r;
  }
}

std::string Groups::describe() const {
  if (uniform_) return str(size_, " ranks as ", nnodes_, " nodes x ", ranks_per_node());
  std::string sizes;
  for (int n = 0; n < nnodes_; ++n) sizes += (n ? "," : "") + std::to_string(node_size_[n]);
  return str(size_, " ranks as ", nnodes_, " uneven nodes (", sizes, ")");
}

}  // namespace tamoe::coll
