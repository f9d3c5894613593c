#include <nlohmann/json.hpp>

#include "catch_compat.h"
#include "runtime/error.h"
#include "topology/cost_model.h"

using tamoe::Error;
using tamoe::topo::CostModel;

namespace {
// Two ranks on one switch: r0 -> sw at 10 GB/s, sw -> r1 at 5 GB/s, r1 -> sw at 20, sw -> r0 at 20.
CostModel two_rank_switch() {
  CostModel m(2);
  int sw = m.add_vertex("sw", "switch");
  m.add_link(0, sw, 10, 1.0);
  m.add_link(sw, 1, 5, 2.0);
  m.add_link(1, sw, 20, 1.0);
  m.add_link(sw, 0, 20, 2.0);
  m.set_location(0, 0, 0);
  m.set_location(1, 1, 1);
  return m;
}
}  // namespace

TEST_CASE("prediction is the busiest link plus the latency term", "[cost-model]") {
  CostModel m = two_rank_switch();
  // 1 GB from 0 to 1 crosses 10 GB/s then 5 GB/s: 0.2 s; 1 GB back crosses 20 and 20: 0.05 s.
  std::vector<double> D = {0, 1e9, 1e9, 0};
  auto p = m.predict(D);
  CHECK(p.bandwidth_seconds == Catch::Approx(0.2));
  CHECK(m.link(p.bottleneck_link).name == "sw->rank1");
  // Latency: each rank sends one message over a 3 us route.
  CHECK(p.latency_seconds == Catch::Approx(3e-6));
  CHECK(p.seconds == Catch::Approx(0.2 + 3e-6));
  m.set_latency_overlap(0.5);
  CHECK(m.predict(D).latency_seconds == Catch::Approx(1.5e-6));
  // Self traffic is free without a memory bandwidth and costs D/B with one.
  std::vector<double> self = {4e9, 0, 0, 0};
  CHECK(m.predict(self).seconds == Catch::Approx(0.0));
  m.set_self_bw_gbps(8);
  CHECK(m.predict(self).seconds == Catch::Approx(0.5));
  // Charged to the rank's in-link (sw -> rank0 at 20 GB/s) instead: 4 GB / 20 GB/s.
  m.set_self_on_ingress(true);
  CHECK(m.predict(self).seconds == Catch::Approx(0.2));
  CHECK(CostModel::from_json(m.to_json()).predict(self).seconds == Catch::Approx(0.2));
}

TEST_CASE("loads add up over shared links", "[cost-model]") {
  // Three ranks behind one shared uplink element.
  CostModel m(3);
  int hub = m.add_vertex("hub", "switch");
  for (int r = 0; r < 3; ++r) m.connect(r, hub, 100, 100, 0);
  std::vector<double> D = {0, 1, 2, 3, 0, 4, 5, 6, 0};
  auto load = m.link_loads(D);
  // rank0 -> hub carries D01 + D02 = 3; hub -> rank2 carries D02 + D12 = 6.
  CHECK(load[0] == Catch::Approx(3));
  CHECK(load[5] == Catch::Approx(6));
  CHECK(m.route(0, 2).size() == 2);
  CHECK(m.pair_level(0, 0) == 0);
}

TEST_CASE("explicit routes replace shortest paths", "[cost-model]") {
  CostModel m(2);
  int a = m.add_vertex("a", "switch"), b = m.add_vertex("b", "switch");
  int l0a = m.add_link(0, a, 10, 0), la1 = m.add_link(a, 1, 10, 0);
  int l0b = m.add_link(0, b, 1, 0), lb1 = m.add_link(b, 1, 1, 0);
  m.add_link(1, a, 10, 0);
  m.add_link(a, 0, 10, 0);
  CHECK(m.route(0, 1) == std::vector<int>{l0a, la1});
  m.set_route(0, 1, {l0b, lb1});
  CHECK(m.route(0, 1) == std::vector<int>{l0b, lb1});
  CHECK(m.predict({0, 1e9, 0, 0}).seconds == Catch::Approx(1.0));
  CHECK_THROWS_AS(m.set_route(0, 1, {l0a, lb1}), Error);  // not a path
  // The explicit route survives JSON.
  CostModel back = CostModel::from_json(m.to_json());
  CHECK(back.route(0, 1) == std::vector<int>{l0b, lb1});
}

TEST_CASE("JSON round trip keeps the model", "[cost-model][json]") {
  CostModel m = two_rank_switch();
  m.set_self_bw_gbps(12.5);
  m.set_probe_classes({{"remote", 1.5, 9.0, 0.03, 1}});
  nlohmann::json j = m.to_json();
  CHECK(j["format"] == "tamoe.cost_model");
  CostModel back = CostModel::from_json(j);
  CHECK(back.nranks() == 2);
  CHECK(back.nlinks() == m.nlinks());
  CHECK(back.self_bw_gbps() == 12.5);
  CHECK(back.probe_classes().at(0).bw_gbps == 9.0);
  std::vector<double> D = {3e8, 1e9, 2e9, 0};
  CHECK(back.predict_seconds(D) == Catch::Approx(m.predict_seconds(D)));
  CHECK(back.pair_level(0, 1) == 3);
}

TEST_CASE("bad cost model JSON names the field", "[cost-model][json][bad-input]") {
  nlohmann::json good = two_rank_switch().to_json();
  auto message = [](const nlohmann::json& j) {
    try {
      CostModel::from_json(j, "model.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto j = good;
  j["colour"] = "blue";
  CHECK(message(j).find("model.json.colour") != std::string::npos);
  j = good;
  j["links"][1]["bw_gbps"] = -5;
  CHECK(message(j).find("model.json.links[1].bw_gbps: expected a positive bandwidth, found -5") !=
        std::string::npos);
  j = good;
  j["format"] = "something.else";
  CHECK(message(j).find("model.json.format") != std::string::npos);
  j = good;
  j["links"][0]["to"] = "nowhere";
  CHECK(message(j).find("'nowhere'") != std::string::npos);
  j = good;
  j["links"].erase(1);  // rank0 can no longer reach rank1
  CHECK(message(j).find("unreachable") != std::string::npos);
  j = good;
  j["ranks"].erase(0);
  CHECK(message(j).find("model.json.ranks") != std::string::npos);
  CHECK_THROWS_AS(CostModel::load("/nonexistent/model.json"), Error);
}

TEST_CASE("bad traffic matrices are rejected", "[cost-model][bad-input]") {
  CostModel m = two_rank_switch();
  CHECK_THROWS_AS(m.predict({1, 2, 3}), Error);
  CHECK_THROWS_AS(m.predict({0, -1, 0, 0}), Error);
  CHECK_THROWS_AS(m.add_link(0, 1, 0.0, 0), Error);
  CHECK_THROWS_AS(CostModel(0), Error);
}

TEST_CASE("bandwidth curves interpolate by size and survive JSON", "[cost-model][curve]") {
  CostModel m(2);
  int sw = m.add_vertex("sw", "switch");
  int l = m.connect(0, sw, 10, 10, 0);
  m.connect(1, sw, 10, 10, 0);
  m.set_bw_curve(l, {{1e3, 1.0}, {1e5, 3.0}});
  CHECK(m.link(l).bw_at(10) == Catch::Approx(1.0));      // clamped below
  CHECK(m.link(l).bw_at(1e4) == Catch::Approx(2.0));     // halfway in log(bytes)
  CHECK(m.link(l).bw_at(1e9) == Catch::Approx(3.0));     // clamped above
  CHECK(m.link(l + 2).bw_at(1e4) == Catch::Approx(10));  // no curve: nominal
  // 1e4 bytes from 0 to 1 at 2 GB/s on the first hop: 5 us.
  std::vector<double> D = {0, 1e4, 0, 0};
  CHECK(m.predict(D).bandwidth_seconds == Catch::Approx(5e-6));
  // Keyed by the sender's volume: 1e4 + 9e4 self bytes = 1e5 -> 3 GB/s.
  m.set_curve_key(CostModel::CurveKey::rank_volume);
  std::vector<double> E = {9e4, 1e4, 0, 0};
  CHECK(m.predict(E).bandwidth_seconds == Catch::Approx(1e4 / 3e9));
  CostModel back = CostModel::from_json(m.to_json());
  CHECK(back.curve_key() == CostModel::CurveKey::rank_volume);
  CHECK(back.predict(E).bandwidth_seconds == Catch::Approx(1e4 / 3e9));
  CHECK_THROWS_AS(m.set_bw_curve(l, {{1e5, 1.0}, {1e3, 3.0}}), Error);  // not increasing
  CHECK_THROWS_AS(m.set_bw_curve(l, {{1e3, -1.0}}), Error);
  auto j = m.to_json();
  j["links"][0]["bw_curve"][0][1] = 0;
  CHECK_THROWS_AS(CostModel::from_json(j), Error);
}
