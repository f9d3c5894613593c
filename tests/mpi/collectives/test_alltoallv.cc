// Multi-rank checks of the host all-to-all(v) algorithms on every layout the rank count allows.
#include <random>
#include <string>
#include <vector>

#include "catch_compat.h"
#include "collectives/alltoallv.h"
#include "layouts.h"
#include "runtime/error.h"
#include "topology/cluster.h"
#include "topology/synthetic.h"

using namespace tamoe::coll;
using tamoe::Error;
using tamoe::Status;
using tamoe::test::Layout;
using tamoe::test::test_layouts;

namespace {

double value(int src, int dst, int64_t idx) {
  return (static_cast<double>(src) * 1000 + dst) * 100000 + static_cast<double>(idx);
}

// Same on every rank: zeros, a silent sender and a silent receiver depending on `trial`.
CountMatrix random_counts(int P, unsigned seed, int trial) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> c(1, 40);
  std::bernoulli_distribution zero(0.3);
  CountMatrix m;
  m.P = P;
  m.c.resize(static_cast<size_t>(P) * P);
  for (auto& v : m.c) v = zero(rng) ? 0 : c(rng);
  if (trial == 1)
    for (int j = 0; j < P; ++j) m.c[static_cast<size_t>(P - 1) * P + j] = 0;  // sends nothing
  if (trial == 2)
    for (int i = 0; i < P; ++i) m.c[static_cast<size_t>(i) * P] = 0;  // rank 0 receives nothing
  if (trial == 3)
    for (auto& v : m.c) v = 0;
  return m;
}

// Runs `algo` ("" = selection) with gapped, reversed displacements and checks every element.
// Returns the algorithm that ran.
std::string check_exchange(AllToAll& a2a, const Groups& g, const CountMatrix& m,
                           const std::string& algo) {
  const int P = g.size(), me = g.rank();
  std::vector<int64_t> sc(P), sd(P), rc(P), rd(P);
  int64_t off = 0;
  for (int j = P - 1; j >= 0; --j) {  // reversed order, 2-element gaps
    sc[j] = m.at(me, j);
    sd[j] = off;
    off += sc[j] + 2;
  }
  std::vector<double> send(off, -1);
  for (int j = 0; j < P; ++j)
    for (int64_t k = 0; k < sc[j]; ++k) send[sd[j] + k] = value(me, j, k);
  off = 1;
  for (int i = 0; i < P; ++i) {
    rc[i] = m.at(i, me);
    rd[i] = off;
    off += rc[i] + 1;
  }
  std::vector<double> recv(off, -7);
  std::string ran;
  if (algo.empty()) {
    ran = a2a.run(send.data(), sc.data(), sd.data(), recv.data(), rc.data(), rd.data(), 8).algo;
  } else {
    CountMatrix got = exchange_counts(g, sc.data(), rc.data());
    REQUIRE(got.c == m.c);
    ran = a2a.run_named(algo, got, HostBuffers{send.data(), recv.data(), 8, sd.data(), rd.data()})
              .algo;
  }
  int64_t wrong = 0;
  for (int i = 0; i < P; ++i)
    for (int64_t k = 0; k < rc[i]; ++k) wrong += recv[rd[i] + k] != value(i, me, k);
  // Gaps stay untouched.
  for (int i = 0; i < P; ++i) wrong += recv[rd[i] - 1] != -7;
  CHECK(wrong == 0);
  return ran;
}

}  // namespace

TEST_CASE("every algorithm moves random counts correctly on every layout", "[coll][a2a]") {
  const int P = tamoe::test::world_size();
  auto layouts = test_layouts(P);
  for (size_t li = 0; li < layouts.size(); ++li) {
    const Layout& l = layouts[li];
    Groups g = Groups::from_nodes(MPI_COMM_WORLD, l.node_of);
    AllToAll a2a(g, AllToAllOptions{nullptr, "mpi"});
    for (const auto& algo : AllToAll::algorithm_names()) {
      std::string why;
      bool hier = algo.rfind("hier", 0) == 0;
      if (hier && !l.uniform) continue;
      for (int trial = 0; trial < 4; ++trial) {
        INFO("layout " << l.name << " algo " << algo << " trial " << trial);
        CountMatrix m = random_counts(P, 1000 + static_cast<unsigned>(li) * 10 + trial, trial);
        CHECK(check_exchange(a2a, g, m, algo) == algo);
      }
    }
  }
}

TEST_CASE("uneven nodes: auto falls back to flat, forced hierarchical is a clear error",
          "[coll][a2a]") {
  const int P = tamoe::test::world_size();
  if (P < 3) return;
  Layout l = test_layouts(P).back();
  REQUIRE(!l.uniform);
  Groups g = Groups::from_nodes(MPI_COMM_WORLD, l.node_of);
  CHECK(!g.uniform());
  // A model in which hierarchical would win on a uniform layout: slow remote latency.
  auto model = tamoe::topo::make_synthetic(
      tamoe::topo::parse_synthetic_cluster("nodes=1,rpn=" + std::to_string(P)));
  AllToAll a(g, AllToAllOptions{&model, "auto"});
  CHECK(check_exchange(a, g, random_counts(P, 7, 0), "") == "mpi");
  for (std::string forced : {"hier", "hier_inter_first"}) {
    AllToAll f(g, AllToAllOptions{nullptr, forced});
    std::vector<double> buf(P, 0);
    std::vector<int64_t> ones(P, 1);
    try {
      f.run(buf.data(), ones.data(), nullptr, buf.data(), ones.data(), nullptr, 8);
      FAIL("forced " << forced << " on uneven nodes did not throw");
    } catch (const Error& e) {
      CHECK(e.status() == Status::invalid_argument);
      std::string msg = e.what();
      CHECK(msg.find(forced) != std::string::npos);
      CHECK(msg.find("uneven") != std::string::npos);
    }
  }
}

TEST_CASE("counts that disagree are caught before data moves, naming both ranks", "[coll][a2a]") {
  const int P = tamoe::test::world_size();
  const int me = tamoe::test::world_rank();
  Groups g = Groups::from_nodes(MPI_COMM_WORLD, std::vector<int>(P, 0));
  AllToAll a(g, AllToAllOptions{nullptr, "pairwise"});
  std::vector<int64_t> sc(P, 2), rc(P, 2);
  const int liar_src = P - 1, liar_dst = 0;
  if (me == liar_dst) rc[liar_src] = 3;  // rank 0 expects 3 from rank P-1, which sends 2
  std::vector<double> send(2 * P, 1), recv(3 * P, 0);
  try {
    a.run(send.data(), sc.data(), nullptr, recv.data(), rc.data(), nullptr, 8);
    FAIL("mismatched counts did not throw");
  } catch (const Error& e) {
    CHECK(e.status() == Status::mismatch);
    std::string msg = e.what();
    CHECK(msg.find(tamoe::str("rank ", liar_src, " sends 2 elements to rank ", liar_dst,
                              " but rank ", liar_dst, " expects 3")) != std::string::npos);
  }
  // The communicator still works afterwards (nobody is stuck in a half-started exchange).
  CHECK(check_exchange(a, g, random_counts(P, 3, 0), "") == "pairwise");
  // Negative counts are bad arguments, named with the rank.
  std::vector<int64_t> neg(P, 1);
  if (me == 0) neg[P - 1] = -1;
  CHECK_THROWS_AS(exchange_counts(g, neg.data(), nullptr), Error);
}

TEST_CASE("the cost model picks hierarchical for small and flat for large messages",
          "[coll][a2a]") {
  const int P = tamoe::test::world_size();
  for (const Layout& l : test_layouts(P)) {
    Groups g = Groups::from_nodes(MPI_COMM_WORLD, l.node_of);
    if (!g.uniform() || g.nnodes() < 2 || g.ranks_per_node() < 2) continue;
    INFO("layout " << l.name);
    auto model = tamoe::topo::make_synthetic(tamoe::topo::parse_synthetic_cluster(
        tamoe::str("nodes=", g.nnodes(), ",rpn=", g.ranks_per_node(),
                   ",intra=100,intra_lat=1,nic=10,nic_lat=20")));
    // Staging copies are what make hierarchical lose on large messages.
    model.set_self_bw_gbps(20);
    AllToAll a(g, AllToAllOptions{&model, "auto"});
    CountMatrix small{P, std::vector<int64_t>(static_cast<size_t>(P) * P, 4)};
    CountMatrix large{P, std::vector<int64_t>(static_cast<size_t>(P) * P, 1 << 17)};
    std::vector<const Algorithm*> list;
    auto algos = make_host_algorithms();
    for (auto& x : algos) list.push_back(x.get());
    AlgoSpec none;
    std::string why;
    CHECK(list[select_algorithm(list, g, small, 8, &model, none, &why)]->name().rfind("hier", 0) ==
          0);
    CHECK(list[select_algorithm(list, g, large, 8, &model, none, &why)]->name() == "mpi");
    // An override range beats the model.
    AlgoSpec forced = parse_algo_spec("pairwise@0-1K", AllToAll::algorithm_names());
    CHECK(list[select_algorithm(list, g, small, 8, &model, forced, &why)]->name() == "pairwise");
    CHECK(check_exchange(a, g, random_counts(P, 11, 0), "").rfind("hier", 0) == 0);
  }
}

TEST_CASE("groups from a topo::Cluster with virtual nodes run hierarchical", "[coll][a2a]") {
  const int P = tamoe::test::world_size();
  for (int v : {2, 3, 4}) {
    if (P % v != 0) {
      // The cluster layer refuses a split that would leave uneven virtual nodes.
      CHECK_THROWS_AS(tamoe::topo::Cluster::create(MPI_COMM_WORLD, tamoe::topo::ClusterOptions{v}),
                      Error);
      continue;
    }
    tamoe::topo::Cluster c = tamoe::topo::Cluster::create(MPI_COMM_WORLD, {v});
    Groups g = Groups::from_cluster(c);
    REQUIRE(g.uniform());
    CHECK(g.nnodes() == v);
    CHECK(g.ranks_per_node() == P / v);
    AllToAll a(g, AllToAllOptions{nullptr, "mpi"});
    for (std::string algo : {"hier", "hier_inter_first"}) {
      INFO("virtual nodes " << v << " algo " << algo);
      CHECK(check_exchange(a, g, random_counts(P, 50 + v, 0), algo) == algo);
    }
  }
}
