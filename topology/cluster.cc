#include "topology/cluster.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/params.h"

namespace tamoe::topo {

namespace {
constexpr int kHostLen = 256;
}

HostLocal host_local(MPI_Comm comm) {
  int rank = 0;
  TAMOE_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  MPI_Comm shm = MPI_COMM_NULL;
  TAMOE_CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &shm));
  HostLocal h;
  MPI_Comm_rank(shm, &h.rank);
  MPI_Comm_size(shm, &h.size);
  MPI_Comm_free(&shm);
  return h;
}

NodeLayout group_into_nodes(const std::vector<int>& node_key) {
  NodeLayout l;
  std::map<int, int> ids;
  l.node_of.resize(node_key.size());
  l.local_of.resize(node_key.size());
  for (size_t r = 0; r < node_key.size(); ++r) {
    int n = ids.emplace(node_key[r], static_cast<int>(ids.size())).first->second;
    if (n == l.nnodes()) l.node_size.push_back(0);
    l.node_of[r] = n;
    l.local_of[r] = l.node_size[n]++;
  }
  l.uniform = std::all_of(l.node_size.begin(), l.node_size.end(),
                          [&](int s) { return s == l.node_size[0]; });
  return l;
}

Cluster Cluster::create(MPI_Comm world, const ClusterOptions& opts) {
  Cluster c;
  TAMOE_CHECK_MPI(MPI_Comm_dup(world, &c.world_));
  TAMOE_CHECK_MPI(MPI_Comm_rank(c.world_, &c.rank_));
  TAMOE_CHECK_MPI(MPI_Comm_size(c.world_, &c.size_));
  log::set_rank(c.rank_);
  const int P = c.size_;

  // Physical hosts: ranks that share memory (MPI_Comm_split_type) and report the same hostname
  // (network-namespace "nodes" on one machine have their own hostnames).
  char host[kHostLen] = {0};
  gethostname(host, kHostLen - 1);
  c.hostname_ = host;
  MPI_Comm shm = MPI_COMM_NULL;
  TAMOE_CHECK_MPI(
      MPI_Comm_split_type(c.world_, MPI_COMM_TYPE_SHARED, c.rank_, MPI_INFO_NULL, &shm));
  int shm_leader = c.rank_;
  TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &shm_leader, 1, MPI_INT, MPI_MIN, shm));
  MPI_Comm_free(&shm);
  std::vector<char> hosts(static_cast<size_t>(P) * kHostLen);
  std::vector<int> leaders(P);
  TAMOE_CHECK_MPI(
      MPI_Allgather(host, kHostLen, MPI_CHAR, hosts.data(), kHostLen, MPI_CHAR, c.world_));
  TAMOE_CHECK_MPI(MPI_Allgather(&shm_leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, c.world_));
  std::map<std::pair<std::string, int>, int> host_ids;
  c.host_of_.resize(P);
  for (int r = 0; r < P; ++r) {
    auto key = std::make_pair(std::string(&hosts[static_cast<size_t>(r) * kHostLen]), leaders[r]);
    auto it = host_ids.emplace(key, static_cast<int>(host_ids.size())).first;
    c.host_of_[r] = it->second;
  }
  c.nhosts_ = static_cast<int>(host_ids.size());

  int v = opts.virtual_nodes >= 0
              ? opts.virtual_nodes
              : static_cast<int>(Params::global().get_int("TAMOE_VIRTUAL_NODES"));
  c.vnodes_ = std::max(1, v);
  std::vector<int> host_count(c.nhosts_, 0), index_in_host(P);
  for (int r = 0; r < P; ++r) index_in_host[r] = host_count[c.host_of_[r]]++;
  for (int h = 0; h < c.nhosts_; ++h)
    if (host_count[h] % c.vnodes_ != 0)
      fail(Status::invalid_argument, str("TAMOE_VIRTUAL_NODES on host ", h),
           str("a count that divides the ", host_count[h], " ranks of that host"), str(c.vnodes_));

  // Node = (host, block of consecutive local ranks). The block index is below vnodes_, so the
  // key is unique per (host, block); every host holds at least vnodes_ ranks, so it stays below P.
  std::vector<int> node_key(P);
  for (int r = 0; r < P; ++r) {
    int h = c.host_of_[r];
    node_key[r] = h * c.vnodes_ + index_in_host[r] / (host_count[h] / c.vnodes_);
  }
  c.nodes_ = group_into_nodes(node_key);

  TAMOE_CHECK_MPI(MPI_Comm_split(c.world_, c.node(), c.rank_, &c.node_comm_));
  TAMOE_CHECK_MPI(MPI_Comm_split(c.world_, c.local_rank(), c.node(), &c.rail_comm_));
  TAMOE_CHECK_MPI(MPI_Comm_split(c.world_, c.local_rank() == 0 ? 0 : MPI_UNDEFINED, c.node(),
                                 &c.leaders_comm_));
  TAMOE_LOGF(info, "topo") << c.describe() << "; this rank: node " << c.node() << " local "
                           << c.local_rank();
  return c;
}

Cluster::Cluster(Cluster&& o) noexcept {
  *this = std::move(o);
}

Cluster& Cluster::operator=(Cluster&& o) noexcept {
  if (this == &o) return *this;
  release();
  world_ = std::exchange(o.world_, MPI_COMM_NULL);
  node_comm_ = std::exchange(o.node_comm_, MPI_COMM_NULL);
  rail_comm_ = std::exchange(o.rail_comm_, MPI_COMM_NULL);
  leaders_comm_ = std::exchange(o.leaders_comm_, MPI_COMM_NULL);
  rank_ = o.rank_;
  size_ = o.size_;
  nhosts_ = o.nhosts_;
  vnodes_ = o.vnodes_;
  hostname_ = std::move(o.hostname_);
  nodes_ = std::move(o.nodes_);
  host_of_ = std::move(o.host_of_);
  return *this;
}

Cluster::~Cluster() {
  release();
}

void Cluster::release() noexcept {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (MPI_Comm* c : {&node_comm_, &rail_comm_, &leaders_comm_, &world_})
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
}

int Cluster::world_rank_of(int node, int local) const {
  for (int r = 0; r < size_; ++r)
    if (nodes_.node_of[r] == node && nodes_.local_of[r] == local) return r;
  return -1;
}

std::string Cluster::describe() const {
  std::string shape = nodes_.uniform ? str(nnodes(), " nodes x ",
                                           nodes_.node_size.empty() ? 0 : nodes_.node_size[0])
                                     : str(nnodes(), " nodes (uneven sizes)");
  return str(size_, " ranks, ", shape,
             vnodes_ > 1 ? str(" (", vnodes_, " virtual nodes per host, ") : std::string(" ("),
             nhosts_, nhosts_ == 1 ? " host)" : " hosts)");
}

}  // namespace tamoe::topo
