#include "collectives/groups.h"

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
  nodes_ = std::move(o.nodes_);
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
  g.finish(c.nodes());
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
  // Nodes numbered by their lowest world rank, as topo::Cluster numbers them.
  g.finish(topo::group_into_nodes(node_of));
  int node = g.node_of(g.rank_), local = g.local_of(g.rank_);
  TAMOE_CHECK_MPI(MPI_Comm_split(g.world_, node, g.rank_, &g.node_));
  TAMOE_CHECK_MPI(MPI_Comm_split(g.world_, local, node, &g.rail_));
  return g;
}

void Groups::finish(topo::NodeLayout nodes) {
  nodes_ = std::move(nodes);
  rank_of_.clear();
  if (uniform()) {
    rank_of_.assign(size_, -1);
    for (int r = 0; r < size_; ++r) rank_of_[node_of(r) * ranks_per_node() + local_of(r)] = r;
  }
}

std::string Groups::describe() const {
  if (uniform()) return str(size_, " ranks as ", nnodes(), " nodes x ", ranks_per_node());
  std::string sizes;
  for (int n = 0; n < nnodes(); ++n) sizes += (n ? "," : "") + std::to_string(node_size(n));
  return str(size_, " ranks as ", nnodes(), " uneven nodes (", sizes, ")");
}

}  // namespace tamoe::coll
