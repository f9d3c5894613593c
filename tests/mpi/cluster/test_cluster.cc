#include "catch_compat.h"
#include "runtime/error.h"
#include "topology/cluster.h"

using tamoe::topo::Cluster;
using tamoe::topo::ClusterOptions;

namespace {
int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
}  // namespace

TEST_CASE("one host without virtual nodes is one node", "[cluster]") {
  Cluster c = Cluster::create(MPI_COMM_WORLD, ClusterOptions{0});
  CHECK(c.nhosts() == 1);
  CHECK(c.nnodes() == 1);
  CHECK(c.local_size() == c.size());
  CHECK(c.local_rank() == c.rank());
  int n = 0;
  MPI_Comm_size(c.node_comm(), &n);
  CHECK(n == c.size());
  MPI_Comm_size(c.rail_comm(), &n);
  CHECK(n == 1);
  CHECK((c.leaders_comm() != MPI_COMM_NULL) == (c.rank() == 0));
}

TEST_CASE("virtual nodes split a host into blocks of consecutive ranks", "[cluster]") {
  const int P = world_size();
  for (int v : {2, 4}) {
    if (P % v != 0) continue;
    Cluster c = Cluster::create(MPI_COMM_WORLD, ClusterOptions{v});
    const int m = P / v;
    CHECK(c.nnodes() == v);
    CHECK(c.uniform());
    CHECK(c.node() == c.rank() / m);
    CHECK(c.local_rank() == c.rank() % m);
    CHECK(c.world_rank_of(c.node(), c.local_rank()) == c.rank());
    // Node communicator: the m ranks of my block, in world order.
    int nr = -1, ns = -1;
    MPI_Comm_rank(c.node_comm(), &nr);
    MPI_Comm_size(c.node_comm(), &ns);
    CHECK(ns == m);
    CHECK(nr == c.local_rank());
    // Rail communicator: same local index on every node, rank == node index.
    MPI_Comm_rank(c.rail_comm(), &nr);
    MPI_Comm_size(c.rail_comm(), &ns);
    CHECK(ns == v);
    CHECK(nr == c.node());
    // Data through the rail: the sum of world ranks on my rail.
    int mine = c.rank(), sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, c.rail_comm());
    int expect = 0;
    for (int node = 0; node < v; ++node) expect += node * m + c.local_rank();
    CHECK(sum == expect);
    if (c.local_rank() == 0) {
      MPI_Comm_size(c.leaders_comm(), &ns);
      CHECK(ns == v);
    } else {
      CHECK(c.leaders_comm() == MPI_COMM_NULL);
    }
  }
}

TEST_CASE("virtual nodes that do not divide the ranks are a clear error on every rank",
          "[cluster][bad-input]") {
  const int P = world_size();
  if (P < 2) return;
  int v = P + 1;
  try {
    Cluster::create(MPI_COMM_WORLD, ClusterOptions{v});
    FAIL("no error");
  } catch (const tamoe::Error& e) {
    CHECK(std::string(e.what()).find("TAMOE_VIRTUAL_NODES") != std::string::npos);
    CHECK(std::string(e.what()).find(std::to_string(v)) != std::string::npos);
  }
}
