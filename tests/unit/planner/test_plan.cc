// The plan data structure, its JSON format, option checks and bad input.
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "catch_compat.h"
#include "planner/clp_lp.h"
#include "planner/planner.h"
#include "planner_test_util.h"
#include "runtime/error.h"
#include "topology/synthetic.h"

using namespace tamoe;
using namespace tamoe::plan;

namespace {
topo::SyntheticCluster two_by(int n, int m) {
  topo::SyntheticCluster c;
  c.nodes = n;
  c.ranks_per_node = m;
  return c;
}
MoeShape small_shape() {
  MoeShape s;
  s.experts_per_rank = 2;
  s.tokens_per_rank = 1024;
  s.top_k = 2;
  s.hidden = 1024;
  s.bytes_per_element = 2;
  s.capacity_factor = 1.25;
  return s;
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}
}  // namespace

TEST_CASE("plan: targets and capacities follow X", "[planner]") {
  PlanOptions o;
  o.mode = "sinkhorn";
  o.rho = 2;
  o.eps = 0.1;
  Plan p = make_plan(topo::make_synthetic(two_by(2, 4)), small_shape(), o);
  REQUIRE(p.nranks == 8);
  const int E = p.shape.experts_per_rank;
  for (int i = 0; i < p.nranks; ++i) {
    std::vector<double> t = p.target(i);
    REQUIRE(t.size() == size_t(8 * E));
    double sum = 0;
    for (size_t e = 0; e < t.size(); ++e) {
      CHECK(t[e] == Catch::Approx(p.at(i, int(e) / E) / E).margin(1e-15));
      sum += t[e];
    }
    CHECK(std::abs(sum - 1) < 1e-9);
    for (int j = 0; j < p.nranks; ++j) {
      double slots = 1.25 * 1024 * 2 * p.at(i, j);
      CHECK(p.capacity(i, j) == static_cast<int64_t>(std::ceil(slots - 1e-9)));
    }
  }
  CHECK(p.shape.volume_bytes() == 1024.0 * 2 * 1024 * 2);
}

TEST_CASE("plan: JSON round trip keeps X, shape and metrics (dense and ladder)", "[planner]") {
  PlanOptions o;
  o.mode = "sinkhorn";
  o.eps = 0.05;
  Plan p = make_plan(topo::make_synthetic(two_by(2, 4)), small_shape(), o);
  Plan q = Plan::from_json(p.to_json());
  REQUIRE(q.nranks == p.nranks);
  REQUIRE(q.x.size() == p.x.size());
  for (size_t k = 0; k < p.x.size(); ++k) CHECK(q.x[k] == p.x[k]);
  CHECK(q.metrics.speedup == p.metrics.speedup);
  CHECK(q.metrics.kl_from_uniform == Catch::Approx(p.metrics.kl_from_uniform));
  CHECK(q.shape.capacity_factor == p.shape.capacity_factor);
  CHECK(q.mode == Mode::sinkhorn);

  if (!have_clp()) return;
  o.mode = "sym";
  Plan l = make_plan(two_by(64, 8), small_shape(), o);
  REQUIRE(l.is_ladder);
  std::string path = "test_planner_ladder.json";
  l.save(path);
  Plan m = Plan::load(path);
  std::remove(path.c_str());
  CHECK(m.is_ladder);
  for (int lv = 0; lv < kLevels; ++lv) CHECK(m.ladder_x[lv] == l.ladder_x[lv]);
  CHECK(m.at(0, 9) == l.at(0, 9));
  CHECK(m.metrics.plan_seconds == l.metrics.plan_seconds);
}

TEST_CASE("plan: loading names the bad field", "[planner]") {
  PlanOptions o;
  o.mode = "uniform";
  Plan p = make_plan(topo::make_synthetic(two_by(2, 2)), small_shape(), o);
  nlohmann::json good = p.to_json();

  auto j = good;
  j["format"] = "tamoe.cost_model";
  CHECK(has(error_of([&] { Plan::from_json(j); }), "plan.format"));
  j = good;
  j["x"][1][2] = 0.5;  // row 1 no longer sums to 1
  std::string e = error_of([&] { Plan::from_json(j); });
  CHECK(has(e, "plan x[1]"));
  CHECK(has(e, "row sum"));
  j = good;
  j["x"][0][0] = "nan";
  CHECK(has(error_of([&] { Plan::from_json(j); }), "plan.x[0][0]"));
  j = good;
  j["shape"]["experts_per_rank"] = 0;
  CHECK(has(error_of([&] { Plan::from_json(j); }), "experts_per_rank"));
  j = good;
  j["capacity"][0][1] = 7;
  CHECK(has(error_of([&] { Plan::from_json(j); }), "plan.capacity[0][1]"));
  j = good;
  j["rho"] = 0.5;
  CHECK(has(error_of([&] { Plan::from_json(j); }), "plan rho"));
  j = good;
  j["colour"] = 1;
  CHECK(has(error_of([&] { Plan::from_json(j); }), "unknown field 'colour'"));
  j = good;
  j.erase("node");
  CHECK(has(error_of([&] { Plan::from_json(j); }), "plan.node"));
  j = good;
  j["nranks"] = 5;
  CHECK(has(error_of([&] { Plan::from_json(j); }), "an array of 5 entries"));
}

TEST_CASE("plan: a plan for another rank count is refused with a clear error", "[planner]") {
  PlanOptions o;
  o.mode = "uniform";
  Plan p = make_plan(topo::make_synthetic(two_by(2, 8)), small_shape(), o);
  p.check_matches(16);
  p.check_matches(16, 2);
  try {
    p.check_matches(8, 0, "rank 3 loading plan.json");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.status() == Status::mismatch);
    std::string m = e.what();
    CHECK(has(m, "rank 3 loading plan.json"));
    CHECK(has(m, "8 ranks"));
    CHECK(has(m, "16 ranks"));
  }
  CHECK(has(error_of([&] { p.check_matches(16, 4); }), "4 experts per rank"));
}

TEST_CASE("plan: bad options and shapes get clear errors", "[planner]") {
  topo::CostModel cm = topo::make_synthetic(two_by(2, 2));
  MoeShape s = small_shape();
  PlanOptions o;
  o.rho = 0.5;
  std::string e = error_of([&] { make_plan(cm, s, o); });
  CHECK(has(e, "rho"));
  CHECK(has(e, "0.5"));
  o.rho = std::numeric_limits<double>::quiet_NaN();
  CHECK(has(error_of([&] { make_plan(cm, s, o); }), "rho"));
  o.rho = std::numeric_limits<double>::infinity();
  CHECK(has(error_of([&] { make_plan(cm, s, o); }), "rho"));
  o = PlanOptions{};
  o.mode = "fastest";
  CHECK(has(error_of([&] { make_plan(cm, s, o); }), "'fastest'"));
  o = PlanOptions{};
  s.experts_per_rank = 0;
  e = error_of([&] { make_plan(cm, s, o); });
  CHECK(has(e, "experts_per_rank"));
  CHECK(has(e, "at least 1 expert"));
  s = small_shape();
  s.capacity_factor = std::numeric_limits<double>::quiet_NaN();
  CHECK(has(error_of([&] { make_plan(cm, s, o); }), "capacity_factor"));
  s = small_shape();
  s.tokens_per_rank = 0;
  CHECK(has(error_of([&] { make_plan(cm, s, o); }), "tokens_per_rank"));
  s = small_shape();
  o.eps = std::numeric_limits<double>::infinity();
  CHECK(has(error_of([&] { make_plan(cm, s, o); }), "eps"));
  o = PlanOptions{};
  o.kl_budget = std::numeric_limits<double>::quiet_NaN();
  CHECK(has(error_of([&] { make_plan(cm, s, o); }), "kl_budget"));
}

TEST_CASE("plan: an unreachable pair is named", "[planner]") {
  // Rank 0 can send to rank 1 but nothing leads back.
  topo::CostModel cm(2);
  int sw = cm.add_vertex("switch", "switch");
  cm.add_link(0, sw, 10, 1);
  cm.add_link(sw, 1, 10, 1);
  for (const char* mode : {"lp", "sym", "sinkhorn", "auto"}) {
    PlanOptions o;
    o.mode = mode;
    std::string e = error_of([&] { make_plan(cm, small_shape(), o); });
    INFO(mode << ": " << e);
    CHECK(has(e, "rank1"));
    CHECK(has(e, "rank0"));
    CHECK(has(e, "unreachable"));
  }
}

TEST_CASE("plan: rho = 1 returns uniform routing in every mode", "[planner]") {
  topo::CostModel cm = topo::make_synthetic(two_by(2, 4));
  std::vector<std::string> modes = {"sinkhorn", "uniform"};
  if (have_clp()) modes.insert(modes.end(), {"lp", "sym", "auto"});
  for (const auto& mode : modes) {
    PlanOptions o;
    o.mode = mode;
    o.rho = 1;
    Plan p = make_plan(cm, small_shape(), o);
    INFO(mode);
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j) CHECK(std::abs(p.at(i, j) - 1.0 / 8) < 1e-12);
    CHECK(p.metrics.speedup == Catch::Approx(1).epsilon(1e-9));
    CHECK(p.metrics.kl_from_uniform < 1e-12);
  }
}

TEST_CASE("plan: shares, ladder profile and KL of a known matrix", "[planner]") {
  // 2 nodes x 2 ranks, X by hand: self 0.4, node peer 0.3, each remote 0.15.
  Plan p;
  p.nranks = 4;
  p.rho = 2;
  p.node = {0, 0, 1, 1};
  p.leaf = {0, 0, 0, 0};
  p.x.resize(16);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) p.x[i * 4 + j] = i == j ? 0.4 : (i / 2 == j / 2 ? 0.3 : 0.15);
  p.validate();
  compute_structure_metrics(p);
  CHECK(p.metrics.share[0] == Catch::Approx(0.4));
  CHECK(p.metrics.share[1] == Catch::Approx(0.3));
  CHECK(p.metrics.share[2] == Catch::Approx(0.3));
  CHECK(p.metrics.share[3] == 0);
  CHECK(p.metrics.ladder[2] == Catch::Approx(0.15));
  double kl = 0.4 * std::log(1.6) + 0.3 * std::log(1.2) + 2 * 0.15 * std::log(0.6);
  CHECK(p.metrics.kl_from_uniform == Catch::Approx(kl).epsilon(1e-12));
  p.x[0] = 0.6;  // above rho/P = 0.5
  CHECK(has(error_of([&] { p.validate(); }), "x[0][0]"));
}
