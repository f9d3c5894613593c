// The rank layout the all-to-all algorithms run on: world, node and rail communicators and the
// (node, local) coordinates of every rank. Built from a topo::Cluster (communicators borrowed)
// or from an explicit node id per rank (communicators owned), which lets tests exercise uneven
// nodes that virtual nodes on one host cannot produce.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "topology/cluster.h"

namespace tamoe::coll {

class Groups {
 public:
  // Not collective; `c` must outlive the Groups.
  static Groups from_cluster(const topo::Cluster& c);
  // Collective over `world`: node_of[r] is rank r's node (any ids; every rank passes the same
  // vector). Within a node, local ranks follow world rank order; nodes are numbered by their
  // lowest world rank. Throws tamoe::Error if node_of has the wrong size.
  static Groups from_nodes(MPI_Comm world, const std::vector<int>& node_of);

  Groups() = default;
  Groups(Groups&& o) noexcept { *this = std::move(o); }
  Groups& operator=(Groups&& o) noexcept;
  Groups(const Groups&) = delete;
  Groups& operator=(const Groups&) = delete;
  ~Groups();

  MPI_Comm world() const { return world_; }
  MPI_Comm node_comm() const { return node_; }  // rank in it == local index
  MPI_Comm rail_comm() const { return rail_; }  // rank in it == node index (when uniform)
  int rank() const { return rank_; }
  int size() const { return size_; }
  int nnodes() const { return nodes_.nnodes(); }
  bool uniform() const { return nodes_.uniform; }
  int ranks_per_node() const { return uniform() ? size_ / nnodes() : 0; }
  int node_of(int r) const { return nodes_.node_of[r]; }
  int local_of(int r) const { return nodes_.local_of[r]; }
  int node_size(int node) const { return nodes_.node_size[node]; }
  // World rank of (node, local); uniform layouts only.
  int rank_of(int node, int local) const { return rank_of_[node * ranks_per_node() + local]; }
  std::string describe() const;

 private:
  void finish(topo::NodeLayout nodes);
  void release() noexcept;
  MPI_Comm world_ = MPI_COMM_NULL, node_ = MPI_COMM_NULL, rail_ = MPI_COMM_NULL;
  bool owns_ = false;
  int rank_ = 0, size_ = 0;
  topo::NodeLayout nodes_;
  std::vector<int> rank_of_;
};

}  // namespace tamoe::coll
