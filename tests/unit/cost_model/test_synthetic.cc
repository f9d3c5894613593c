#include "catch_compat.h"
#include "runtime/error.h"
#include "topology/synthetic.h"

using tamoe::Error;
using namespace tamoe::topo;

TEST_CASE("synthetic two-level cluster predicts the NIC and NVLink times", "[synthetic]") {
  SyntheticCluster c;  // 2 nodes x 8, 450 GB/s NVLink, 50 GB/s NIC per rank
  c.intra_lat_us = 0;
  c.nic_lat_us = 0;
  c.switch_lat_us = 0;
  CostModel m = make_synthetic(c);
  REQUIRE(m.nranks() == 16);
  CHECK(m.nnodes() == 2);
  CHECK(m.pair_level(0, 7) == 1);
  CHECK(m.pair_level(0, 8) == 2);
  // Uniform: each rank sends b bytes to each of 16 ranks. Per-rank NIC carries 8b, NVLink 7b.
  const double b = 1e8;
  std::vector<double> D(256, b);
  auto p = m.predict(D);
  CHECK(p.seconds == Catch::Approx(8 * b / 50e9));
  CHECK(m.vertex(m.link(p.bottleneck_link).to).kind != "fabric");
}

TEST_CASE("shared NIC and oversubscribed spine", "[synthetic]") {
  SyntheticCluster c =
      parse_synthetic_cluster("nodes=4,rpn=2,intra=100,nic=10,shared_nic=1,leaf=2,oversub=2");
  c.nic_lat_us = c.intra_lat_us = c.switch_lat_us = 0;
  CostModel m = make_synthetic(c);
  REQUIRE(m.nranks() == 8);
  CHECK(m.pair_level(0, 2) == 2);  // nodes 0 and 1 share leaf0
  CHECK(m.pair_level(0, 4) == 3);
  // Rank 0 sends 1 GB to rank 4: shared NIC (10 GB/s) and leaf uplink 2*10/2 = 10 GB/s.
  std::vector<double> D(64, 0.0);
  D[0 * 8 + 4] = 1e9;
  D[1 * 8 + 5] = 1e9;  // the node's second rank shares the NIC and the uplink: 2 GB / 10 GB/s
  CHECK(m.predict(D).seconds == Catch::Approx(0.2));
}

TEST_CASE("bad synthetic cluster strings are clear errors", "[synthetic][bad-input]") {
  CHECK_THROWS_AS(parse_synthetic_cluster("nodes=two"), Error);
  CHECK_THROWS_AS(parse_synthetic_cluster("nodes"), Error);
  CHECK_THROWS_AS(parse_synthetic_cluster("gpus=8"), Error);
  try {
    make_synthetic(parse_synthetic_cluster("nodes=2,nic=-3"));
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("nic") != std::string::npos);
    CHECK(std::string(e.what()).find("-3") != std::string::npos);
  }
  CHECK_THROWS_AS(make_synthetic(parse_synthetic_cluster("oversub=0.5")), Error);
  SyntheticCluster round =
      parse_synthetic_cluster(to_string(parse_synthetic_cluster("nodes=3,rpn=4,leaf=1")));
  CHECK(round.nodes == 3);
  CHECK(round.ranks_per_node == 4);
  CHECK(round.nodes_per_leaf == 1);
}
