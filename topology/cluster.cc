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

  // Node = (host, block of consecutive local ranks); numbered by lowest world rank.
  std::map<std::pair<int, int>, int> node_ids;
  c.node_of_.resize(P);
  c.local_of_.resize(P);
  for (int r = 0; r < P; ++r) {
    int h = c.host_of_[r];
    int per_node = host_count[h] / c.vnodes_;
    auto key = std::make_pair(h, index_in_host[r] / per_node);
    auto it = node_ids.emplace(key, static_cast<int>(node_ids.size())).first;
    c.node_of_[r] = it->second;
    c.local_of_[r] = index_in_host[r] % per_node;
  }
  c.nnodes_ = static_cast<int>(node_ids.size());
  c.node_size_.assign(c.nnodes_, 0);
  for (int r = 0; r < P; ++r) c.node_size_[c.node_of_[r]]++;
  c.uniform_ = std::all_of(c.node_size_.begin(), c.node_size_.end(),
                           [&](int s) { return s == c.node_size_[0]; });

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
  nnodes_ = o.nnodes_;
  nhosts_ = o.nhosts_;
  vnodes_ = o.vnodes_;
  uniform_ = o.uniform_;
  hostname_ = std::move(o.hostname_);
  node_of_ = std::move(o.node_of_);
  local_of_ = std::move(o.local_of_);
  host_of_ = std::move(o.host_of_);
  node_size_ = std::move(o.node_size_);
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
    if (node_of_[r] == node && local_of_[r] == local) return r;
  return -1;
}

std::string Cluster::describe() const {
  std::string shape = uniform_ ? str(nnodes_, " nodes x ", node_size_.empty() ? 0 : node_size_[0])
                               : str(nnodes_, " nodes (uneven sizes)");
  return str(size_, " ranks, ", shape,
             vnodes_ > 1 ? str(" (", vnodes_, " virtual nodes per host, ") : std::string(" ("),
             nhosts_, nhosts_ == 1 ? " host)" : " hosts)");
}

}  // namespace tamoe::topo
