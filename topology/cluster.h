// The ranks of a job grouped into nodes, with the subgroup communicators the hierarchical
// collectives run on: node (shared memory), rail (same local index across nodes) and node
// leaders. "Virtual nodes" (TAMOE_VIRTUAL_NODES or ClusterOptions) split each physical host into
// several nodes of consecutive local ranks so one machine exercises the multi-node paths.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace tamoe::topo {

struct ClusterOptions {
  // Virtual nodes per physical host; -1 reads TAMOE_VIRTUAL_NODES, 0 or 1 means off.
  int virtual_nodes = -1;
};

// This rank's index among the ranks of `comm` that share its host's memory, and their number
// (MPI_Comm_split_type SHARED). Collective. Device code maps ranks to GPUs with it: one GPU per
// rank means size <= the host's device count and device = rank.
struct HostLocal {
  int rank = 0;
  int size = 1;
};
HostLocal host_local(MPI_Comm comm);

// Ranks grouped into nodes. Nodes are numbered by their lowest world rank; within a node, local
// indices follow world rank order.
struct NodeLayout {
  std::vector<int> node_of;    // world rank -> node
  std::vector<int> local_of;   // world rank -> index within its node
  std::vector<int> node_size;  // node -> number of ranks
  bool uniform = true;         // every node has the same number of ranks
  int nnodes() const { return static_cast<int>(node_size.size()); }
};
// Not collective. World ranks r and q share a node when node_key[r] == node_key[q] (any ids).
NodeLayout group_into_nodes(const std::vector<int>& node_key);

class Cluster {
 public:
  // Collective over `world` (which is duplicated, not owned). Nodes are numbered by their lowest
  // world rank; within a node, local ranks follow world rank order. Throws tamoe::Error when the
  // ranks of a host cannot be split into the requested virtual nodes.
  static Cluster create(MPI_Comm world, const ClusterOptions& opts = {});
  Cluster() = default;
  Cluster(Cluster&& o) noexcept;
  Cluster& operator=(Cluster&& o) noexcept;
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;
  ~Cluster();

  MPI_Comm world() const { return world_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  int node() const { return nodes_.node_of.empty() ? 0 : nodes_.node_of[rank_]; }
  int nnodes() const { return nodes_.nnodes(); }
  int local_rank() const { return nodes_.local_of.empty() ? 0 : nodes_.local_of[rank_]; }
  int local_size() const { return nodes_.node_size.empty() ? 1 : nodes_.node_size[node()]; }
  // Every node has the same number of ranks (the hierarchical algorithms need this).
  bool uniform() const { return nodes_.uniform; }
  const NodeLayout& nodes() const { return nodes_; }
  int host() const { return host_of_.empty() ? 0 : host_of_[rank_]; }
  int nhosts() const { return nhosts_; }
  int virtual_nodes_per_host() const { return vnodes_; }
  const std::string& hostname() const { return hostname_; }

  int node_of(int world_rank) const { return nodes_.node_of.at(world_rank); }
  int local_of(int world_rank) const { return nodes_.local_of.at(world_rank); }
  int host_of(int world_rank) const { return host_of_.at(world_rank); }
  int node_size(int node) const { return nodes_.node_size.at(node); }
  // World rank of (node, local) or -1.
  int world_rank_of(int node, int local) const;

  MPI_Comm node_comm() const { return node_comm_; }
  MPI_Comm rail_comm() const { return rail_comm_; }        // rank in it == node index (uniform)
  MPI_Comm leaders_comm() const { return leaders_comm_; }  // MPI_COMM_NULL on non-leaders

  // A one-line description: "4 ranks, 2 nodes x 2 (virtual, 1 host)".
  std::string describe() const;

 private:
  void release() noexcept;
  MPI_Comm world_ = MPI_COMM_NULL;
  MPI_Comm node_comm_ = MPI_COMM_NULL, rail_comm_ = MPI_COMM_NULL, leaders_comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 0, nhosts_ = 0, vnodes_ = 1;
  std::string hostname_;
  NodeLayout nodes_;
  std::vector<int> host_of_;
};

}  // namespace tamoe::topo
