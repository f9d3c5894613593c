// Cluster description files (format "tamoe.cluster" v1): valid fixtures build the expected cost
// model; every bad fixture gives an error naming the file, the field and the expected/found values.
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>

#include "catch_compat.h"
#include "runtime/error.h"
#include "topology/cluster_desc.h"
#include "topology/synthetic.h"

using nlohmann::json;
using tamoe::Error;
using tamoe::Status;
using tamoe::test::data_path;
using tamoe::topo::cluster_description_from_json;
using tamoe::topo::CostModel;
using tamoe::topo::load_cluster_description;

namespace {

// The error message of loading `file`, checked to contain the file name and every fragment.
void expect_error(const std::string& file, std::initializer_list<std::string> fragments,
                  int expected_nranks = -1) {
  std::string msg;
  Status status = Status::ok;
  try {
    load_cluster_description(data_path(file), expected_nranks);
  } catch (const Error& e) {
    msg = e.what();
    status = e.status();
  }
  INFO("file " << file << " gave: " << msg);
  REQUIRE(!msg.empty());
  CHECK(status == Status::invalid_input);
  CHECK(msg.find(file) != std::string::npos);
  for (const std::string& f : fragments) {
    INFO("missing fragment: " << f);
    CHECK(msg.find(f) != std::string::npos);
  }
}

std::string error_of(const json& j, int expected_nranks = -1) {
  try {
    cluster_description_from_json(j, "inline", expected_nranks);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

int link_id(const CostModel& m, const std::string& name) {
  for (int l = 0; l < m.nlinks(); ++l)
    if (m.link(l).name == name) return l;
  FAIL("no link named " << name);
  return -1;
}

// A small valid description to mutate in tests.
json two_nodes() {
  json nic = {{"bw_gbps", 50}, {"lat_us", 5}};
  return {{"format", "tamoe.cluster"},
          {"version", 1},
          {"switches", {{{"name", "leaf0"}}}},
          {"nodes",
           {{{"name", "n"},
             {"count", 2},
             {"ranks", 2},
             {"leaf", "leaf0"},
             {"intra_bw_gbps", 100},
             {"nic", nic}}}}};
}

}  // namespace

TEST_CASE("rail cluster: ranks, locations and link bandwidths", "[cluster-desc]") {
  CostModel m = load_cluster_description(data_path("cluster_rail_2x4.json"), 8);
  REQUIRE(m.nranks() == 8);
  CHECK(m.nnodes() == 2);
  for (int r = 0; r < 8; ++r) {
    CHECK(m.node_of(r) == r / 4);
    // Rail switches get leaf ids 0..3 in file order (the spine has no NICs and gets none).
    CHECK(m.leaf_of(r) == r % 4);
  }
  CHECK(m.pair_level(0, 1) == 1);  // same node
  CHECK(m.pair_level(0, 4) == 2);  // same rail
  CHECK(m.pair_level(0, 5) == 3);  // different rail: through the spine
  CHECK(m.find_vertex("n0") >= 0);
  CHECK(m.find_vertex("n1/nic3") >= 0);
  CHECK(m.vertex(m.find_vertex("rail2")).kind == "rail");
  // A rail's uplink carries both nodes' NICs on that rail: 2 x 25 GB/s at 1:1.
  CHECK(m.link(link_id(m, "rail1->spine0")).bw_gbps == Catch::Approx(50));
  CHECK(m.link(link_id(m, "spine0->rail1")).bw_gbps == Catch::Approx(50));
  CHECK(m.link(link_id(m, "rank5->n1/nic1")).bw_gbps == Catch::Approx(25));
  CHECK(m.link(link_id(m, "rank5->n1")).bw_gbps == Catch::Approx(100));
  CHECK(m.route(0, 4).size() == 4);                      // rank -> nic -> rail -> nic -> rank
  CHECK(m.route(0, 5).size() == 6);                      // ... rail -> spine -> rail ...
  CHECK(m.route_latency_us(0, 4) == Catch::Approx(8));   // 2 + 2 + 2 + 2
  CHECK(m.route_latency_us(0, 5) == Catch::Approx(10));  // + 1 + 1 at the spine
  CHECK(m.route_latency_us(0, 1) == Catch::Approx(2));   // intra_lat_us
}

TEST_CASE("rail cluster: predicted time of a traffic matrix matches a hand computation",
          "[cluster-desc]") {
  CostModel m = load_cluster_description(data_path("cluster_rail_2x4.json"));
  std::vector<double> D(64, 0.0);
  auto at = [&](int i, int j) -> double& { return D[i * 8 + j]; };
  at(0, 4) = 1e9;  // same rail
  at(0, 5) = 1e9;  // cross rail via spine
  at(0, 1) = 1e9;  // same node
  at(2, 7) = 1e9;  // cross rail via spine
  // rank0's NIC link carries 0->4 and 0->5: 2 GB at 25 GB/s = 0.08 s; every other link less
  // (the spine links carry 1 GB at 50 GB/s, the fabric 1 GB at 100 GB/s).
  // Latency: rank 0 starts 8 + 10 + 2 = 20 us of routes, rank 2 starts 10 us.
  auto p = m.predict(D);
  CHECK(p.bandwidth_seconds == Catch::Approx(0.08));
  CHECK(p.latency_seconds == Catch::Approx(20e-6));
  CHECK(p.seconds == Catch::Approx(0.08 + 20e-6));
  std::string bottleneck = m.link(p.bottleneck_link).name;
  CHECK((bottleneck == "rank0->n0/nic0" || bottleneck == "n0/nic0->rail0"));
}

TEST_CASE("two leaves with 2:1 oversubscription", "[cluster-desc]") {
  CostModel m = load_cluster_description(data_path("cluster_2leaf_oversub.json"), 8);
  REQUIRE(m.nranks() == 8);
  CHECK(m.nnodes() == 4);
  for (int r = 0; r < 8; ++r) {
    CHECK(m.node_of(r) == r / 2);
    CHECK(m.leaf_of(r) == r / 4);
  }
  CHECK(m.pair_level(0, 2) == 2);
  CHECK(m.pair_level(0, 4) == 3);
  // Leaf uplink = nodes x ranks x nic_bw / oversubscription = 2 x 2 x 25 / 2.
  CHECK(m.link(link_id(m, "leaf0->spine0")).bw_gbps == Catch::Approx(50));
  CHECK(m.link(link_id(m, "spine0->leaf1")).bw_gbps == Catch::Approx(50));
  CHECK(m.link(link_id(m, "leaf0->spine0")).lat_us == Catch::Approx(1));

  // Ranks 0..3 (leaf0) each send 1 GB to rank r + 4 (leaf1): 4 GB over a 50 GB/s uplink = 0.08 s,
  // twice the 0.04 s each 25 GB/s NIC needs; each route is 2+2+1+1+2+2 = 10 us.
  std::vector<double> D(64, 0.0);
  for (int r = 0; r < 4; ++r) D[r * 8 + r + 4] = 1e9;
  auto p = m.predict(D);
  CHECK(p.bandwidth_seconds == Catch::Approx(0.08));
  CHECK(p.latency_seconds == Catch::Approx(10e-6));
  CHECK(m.link(p.bottleneck_link).name == "leaf0->spine0");
  // The same traffic inside one leaf never touches the uplink: NIC bound at 0.04 s.
  std::vector<double> local(64, 0.0);
  for (int r = 0; r < 2; ++r) local[r * 8 + r + 2] = 1e9;
  CHECK(m.predict(local).bandwidth_seconds == Catch::Approx(0.04));
}

TEST_CASE("a description of a synthetic cluster predicts what make_synthetic predicts",
          "[cluster-desc]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1e8);
  for (const char* spec :
       {"nodes=2,rpn=4", "nodes=4,rpn=2,leaf=2,oversub=2",
        "nodes=6,rpn=3,leaf=4,oversub=3,shared_nic=1,nic=40", "nodes=3,rpn=1,leaf=1,oversub=1.5"}) {
    INFO(spec);
    auto sc = tamoe::topo::parse_synthetic_cluster(spec);
    CostModel a = tamoe::topo::make_synthetic(sc);
    CostModel b = cluster_description_from_json(tamoe::topo::synthetic_cluster_description(sc),
                                                "synthetic", sc.nranks());
    REQUIRE(b.nranks() == a.nranks());
    const int P = a.nranks();
    for (int r = 0; r < P; ++r) {
      CHECK(b.node_of(r) == a.node_of(r));
      CHECK(b.leaf_of(r) == a.leaf_of(r));
    }
    for (int trial = 0; trial < 3; ++trial) {
      std::vector<double> D(static_cast<size_t>(P) * P);
      for (double& x : D) x = u(rng);
      auto pa = a.predict(D), pb = b.predict(D);
      CHECK(pb.bandwidth_seconds == Catch::Approx(pa.bandwidth_seconds).epsilon(1e-12));
      CHECK(pb.latency_seconds == Catch::Approx(pa.latency_seconds).epsilon(1e-12));
    }
  }
}

TEST_CASE("node groups, shared NICs, explicit links and model settings", "[cluster-desc]") {
  json d = two_nodes();
  // Two groups with one prefix are numbered across the cluster: n0, n1, then n2.
  d["nodes"].push_back({{"name", "n"}, {"count", 1}, {"ranks", 1}});
  d["nodes"][0]["nic"]["per_rank"] = false;
  // n2 has one rank and no switch: an undirected explicit link attaches the rank to leaf0. A
  // directed link leaf0 -> n0 (fabric) only adds a path into n0.
  d["links"] = {
      {{"from", "rank4"}, {"to", "leaf0"}, {"bw_gbps", 10}, {"lat_us", 3}},
      {{"from", "leaf0"}, {"to", "n0"}, {"bw_gbps", 7}, {"directed", true}, {"name", "mgmt"}}};
  d["self_bw_gbps"] = 200;
  d["latency_overlap"] = 0.5;
  CostModel m = cluster_description_from_json(d, "inline", 5);
  CHECK(m.find_vertex("n2") >= 0);
  CHECK(m.node_of(4) == 2);
  CHECK(m.leaf_of(4) != m.leaf_of(0));  // attached by a link, not on a leaf
  CHECK(m.self_bw_gbps() == Catch::Approx(200));
  CHECK(m.latency_overlap() == Catch::Approx(0.5));
  // Shared NIC: n0/nic -> leaf0 is one 50 GB/s link for both ranks of n0.
  CHECK(m.link(link_id(m, "n0/nic->leaf0")).bw_gbps == Catch::Approx(50));
  CHECK(m.link(link_id(m, "mgmt")).bw_gbps == Catch::Approx(7));
  CHECK(m.link(link_id(m, "rank4->leaf0")).lat_us == Catch::Approx(3));
  CHECK(m.link(link_id(m, "leaf0->rank4")).bw_gbps == Catch::Approx(10));
  // Both ranks of n0 send 1 GB off-node: 2 GB through the shared 50 GB/s NIC link = 0.04 s.
  std::vector<double> D(25, 0.0);
  D[0 * 5 + 2] = 1e9;
  D[1 * 5 + 3] = 1e9;
  CHECK(m.predict(D).bandwidth_seconds == Catch::Approx(0.04));
  // The source names the file and the description builder.
  CHECK(m.source().find("inline") != std::string::npos);
}

TEST_CASE("bad files: unknown, missing and mistyped fields", "[cluster-desc][bad-input]") {
  expect_error("cluster_bad_unknown_field.json",
               {"nodes[0].bandwith_gbps", "unknown field 'bandwith_gbps'", "intra_bw_gbps", "nic"});
  expect_error("cluster_bad_missing_field.json",
               {"nodes[1].ranks", "a required field", "found no such field"});
  expect_error("cluster_bad_wrong_type.json",
               {"nodes[0].ranks", "expected an integer", "found \"4\" (string)"});
}

TEST_CASE("bad files: bandwidths and latencies out of range", "[cluster-desc][bad-input]") {
  expect_error("cluster_bad_negative_bw.json",
               {"nodes[1].nic.bw_gbps", "expected a positive bandwidth", "found -50"});
  expect_error("cluster_bad_zero_bw.json",
               {"switches[1].uplink_bw_gbps", "expected a positive bandwidth", "found 0"});
  expect_error("cluster_bad_negative_latency.json",
               {"nodes[0].intra_lat_us", "expected a non-negative latency", "found -1.5"});
}

TEST_CASE("non-finite numbers in a file and in a JSON value", "[cluster-desc][bad-input]") {
  // JSON cannot hold 1e999: the parser fails, and the message names the field it was reading.
  expect_error("cluster_bad_nonfinite.json", {"links[0].bw_gbps", "finite", "1e999"});
  json d = two_nodes();
  d["nodes"][0]["intra_bw_gbps"] = std::numeric_limits<double>::infinity();
  std::string msg = error_of(d);
  CHECK(msg.find("inline: nodes[0].intra_bw_gbps") != std::string::npos);
  CHECK(msg.find("finite") != std::string::npos);
  d = two_nodes();
  d["nodes"][0]["nic"]["lat_us"] = std::nan("");
  msg = error_of(d);
  CHECK(msg.find("nodes[0].nic.lat_us") != std::string::npos);
  CHECK(msg.find("expected a finite number, found nan") != std::string::npos);
}

TEST_CASE("bad files: duplicate names and names that do not exist", "[cluster-desc][bad-input]") {
  expect_error("cluster_bad_duplicate_name.json",
               {"nodes[1].name", "unique", "found 'n0', already the name of nodes[0]"});
  expect_error("cluster_bad_unknown_leaf.json",
               {"nodes[1].leaf", "the name of a switch (spine0, leaf0)", "found 'leaf9'"});
  expect_error("cluster_bad_unknown_uplink.json",
               {"switches[1].uplink", "the name of a switch", "found 'spine9'"});
  json d = two_nodes();
  d["links"] = {{{"from", "n0"}, {"to", "spine7"}, {"bw_gbps", 1}}};
  std::string msg = error_of(d);
  CHECK(msg.find("inline: links[0].to") != std::string::npos);
  CHECK(msg.find("'spine7'") != std::string::npos);
  d = two_nodes();
  d["switches"][0]["name"] = "rank3";  // collides with a rank's vertex name
  CHECK(error_of(d).find("switches[0].name") != std::string::npos);
}

TEST_CASE("bad file: a cycle of switch uplinks", "[cluster-desc][bad-input]") {
  expect_error("cluster_bad_switch_cycle.json",
               {".uplink", "no cycle", "spine0 -> leaf0 -> spine0"});
  json d = two_nodes();
  d["switches"][0]["uplink"] = "leaf0";
  d["switches"][0]["uplink_bw_gbps"] = 10;
  CHECK(error_of(d).find("the cycle leaf0 -> leaf0") != std::string::npos);
}

TEST_CASE("rank count must match the job", "[cluster-desc][bad-input]") {
  expect_error(
      "cluster_rail_2x4.json",
      {"cluster_rail_2x4.json: nodes", "expected 16 ranks in all", "found 8 ranks on 2 nodes"}, 16);
  CHECK_NOTHROW(load_cluster_description(data_path("cluster_rail_2x4.json"), 8));
  CHECK_NOTHROW(load_cluster_description(data_path("cluster_rail_2x4.json")));
}

TEST_CASE("bad files: unreachable pairs are found through the model", "[cluster-desc][bad-input]") {
  // n1 has no leaf and no links.
  expect_error("cluster_bad_unreachable.json",
               {"nodes[1]", "a path from rank 0 (node n0) to rank 4 (node n1)", "unreachable"});
  // Rails with no spine: same-rail pairs connect, rank 0 -> rank 5 (rail0 -> rail1) does not.
  expect_error("cluster_bad_rails_no_spine.json",
               {"nodes[0]", "rank 0 (node n0) to rank 5 (node n1)", "unreachable"});
}

TEST_CASE("bad files: format name, version and JSON syntax", "[cluster-desc][bad-input]") {
  expect_error("cluster_bad_format.json",
               {": format", "expected \"tamoe.cluster\"", "found \"tamoe.cost_model\""});
  expect_error("cluster_bad_version.json", {": version", "expected 1", "found 2"});
  // The missing comma is found on the next key, inside nodes[0].
  expect_error("cluster_bad_syntax.json", {"nodes[0]", "valid JSON", "parse error"});
  std::string msg;
  try {
    load_cluster_description(data_path("cluster_does_not_exist.json"));
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("cluster_does_not_exist.json") != std::string::npos);
  CHECK(msg.find("cannot open") != std::string::npos);
}

TEST_CASE("contradictory or incomplete entries", "[cluster-desc][bad-input]") {
  json d = two_nodes();
  d["switches"] = {
      {{"name", "leaf0"}, {"uplink", "spine"}, {"uplink_bw_gbps", 100}, {"oversubscription", 2}},
      {{"name", "spine"}}};
  std::string msg = error_of(d);
  CHECK(msg.find("switches[0].oversubscription") != std::string::npos);
  CHECK(msg.find("either uplink_bw_gbps or oversubscription") != std::string::npos);

  d = two_nodes();
  d["nodes"][0]["leaf"] = {"leaf0", "leaf0", "leaf0"};  // 3 rails for 2 ranks
  msg = error_of(d);
  CHECK(msg.find("nodes[0].leaf") != std::string::npos);
  CHECK(msg.find("one per rank (2)") != std::string::npos);
  CHECK(msg.find("an array of 3") != std::string::npos);

  d = two_nodes();
  d["nodes"][0].erase("nic");
  msg = error_of(d);
  CHECK(msg.find("nodes[0].nic") != std::string::npos);
  CHECK(msg.find("required") != std::string::npos);

  d = two_nodes();
  d["nodes"][0].erase("intra_bw_gbps");  // needed with 2 ranks per node
  CHECK(error_of(d).find("nodes[0].intra_bw_gbps: expected a required field") != std::string::npos);

  d = two_nodes();
  d["nodes"][0]["count"] = 0;
  CHECK(error_of(d).find("nodes[0].count: expected an integer in [1,") != std::string::npos);

  d = two_nodes();
  d["switches"][0]["kind"] = "router";
  CHECK(error_of(d).find("switches[0].kind") != std::string::npos);

  d = two_nodes();
  d["nodes"] = json::array();
  CHECK(error_of(d).find("inline: nodes: expected a non-empty array") != std::string::npos);

  // A switch sized by oversubscription needs something below it.
  d = two_nodes();
  d["switches"] = {{{"name", "leaf0"}}, {{"name", "idle"}, {"uplink", "leaf0"}}};
  msg = error_of(d);
  CHECK(msg.find("switches[1]") != std::string::npos);
  CHECK(msg.find("nothing attached to 'idle'") != std::string::npos);
}

TEST_CASE("the documented example is the fixture and loads as described", "[cluster-desc]") {
  // docs/cluster_description.md embeds tests/data/cluster_example.json in its first json block.
  std::ifstream doc(data_path("../../docs/cluster_description.md"));
  REQUIRE(doc);
  std::stringstream text;
  text << doc.rdbuf();
  const std::string md = text.str();
  const std::string open = "```json\n";
  size_t begin = md.find(open);
  REQUIRE(begin != std::string::npos);
  begin += open.size();
  size_t end = md.find("```", begin);
  REQUIRE(end != std::string::npos);
  std::ifstream fixture(data_path("cluster_example.json"));
  REQUIRE(fixture);
  json from_doc = json::parse(md.substr(begin, end - begin));
  json from_file = json::parse(fixture);
  CHECK(from_doc == from_file);

  CostModel m = load_cluster_description(data_path("cluster_example.json"), 34);
  CHECK(m.nnodes() == 5);
  CHECK(m.node_of(7) == 0);
  CHECK(m.node_of(8) == 1);
  CHECK(m.node_of(31) == 3);
  CHECK(m.node_of(33) == 4);
  CHECK(m.find_vertex("gpu3") >= 0);
  CHECK(m.find_vertex("cpu0/nic") >= 0);
  CHECK(m.leaf_of(15) == 0);
  CHECK(m.leaf_of(16) == 1);
  CHECK(m.leaf_of(32) == 1);
  CHECK(m.link(link_id(m, "leaf0->spine0")).bw_gbps == Catch::Approx(400));
  CHECK(m.link(link_id(m, "leaf1->spine0")).bw_gbps == Catch::Approx(412.5));
  CHECK(m.self_bw_gbps() == Catch::Approx(900));
}
