#include <cmath>
#include <random>
#include <set>

#include "catch_compat.h"
#include "routing/gate.h"
#include "runtime/error.h"

using namespace tamoe::route;

namespace {

MatrixRf random_logits(int s, int n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  MatrixRf m(s, n);
  for (int i = 0; i < m.size(); ++i) m.data()[i] = d(rng);
  return m;
}

const Eigen::VectorXf kNoBias;

// Double-precision softmax of one row.
std::vector<double> softmax_row(const MatrixRf& z, int t) {
  std::vector<double> p(z.cols());
  double mx = -INFINITY, sum = 0;
  for (int e = 0; e < z.cols(); ++e) mx = std::max(mx, double(z(t, e)));
  for (int e = 0; e < z.cols(); ++e) sum += p[e] = std::exp(double(z(t, e)) - mx);
  for (auto& v : p) v /= sum;
  return p;
}

void check_invariants(const Routing& r, const ExpertLayout& l, const GateOptions& o) {
  const auto cap = effective_capacity(o, r.expert.rows(), l.num_ranks());
  int64_t dropped = 0;
  std::vector<int64_t> per_rank(l.num_ranks(), 0), per_expert(l.num_experts(), 0);
  for (Eigen::Index t = 0; t < r.expert.rows(); ++t) {
    std::set<int> used;
    for (int j = 0; j < o.k; ++j) {
      if (r.dropped(t, j)) {
        ++dropped;
        CHECK(r.expert(t, j) == -1);
        CHECK(r.weight(t, j) == 0.0f);
        continue;
      }
      const int e = r.expert(t, j);
      REQUIRE(e >= 0);
      REQUIRE(e < l.num_experts());
      CHECK(used.insert(e).second);  // no expert twice per token
      ++per_rank[l.rank_of(e)];
      ++per_expert[e];
    }
  }
  CHECK(dropped == r.num_dropped);
  CHECK(per_rank == r.rank_count);
  CHECK(per_expert == r.expert_count);
  for (int p = 0; p < l.num_ranks(); ++p)
    if (cap[p] >= 0) CHECK(r.rank_count[p] <= cap[p]);
}

}  // namespace

TEST_CASE("top-k picks the largest keys, ties to the lower expert", "[routing]") {
  auto layout = ExpertLayout::regular(2, 2, 1);  // 4 experts
  MatrixRf z(2, 4);
  z << 1.0f, 3.0f, 3.0f, 0.5f,  //
      2.0f, 2.0f, 2.0f, 2.0f;
  GateOptions o;
  o.k = 2;
  o.overflow = Overflow::dropless;
  auto tk = select_topk(z, kNoBias, layout, o);
  CHECK(tk.expert(0, 0) == 1);
  CHECK(tk.expert(0, 1) == 2);
  CHECK(tk.expert(1, 0) == 0);
  CHECK(tk.expert(1, 1) == 1);
  CHECK(tk.score(1, 0) == Catch::Approx(0.25));
  auto p0 = softmax_row(z, 0);
  CHECK(tk.score(0, 0) == Catch::Approx(p0[1]).epsilon(1e-7));
  CHECK(tk.expert_count == std::vector<int64_t>{1, 2, 1, 0});
}

TEST_CASE("bias changes the selection but not the combine weights", "[routing]") {
  auto layout = ExpertLayout::regular(4, 2, 2);
  auto z = random_logits(64, 8, 1);
  GateOptions o;
  o.k = 2;
  o.overflow = Overflow::dropless;
  Eigen::VectorXf bias = Eigen::VectorXf::Zero(8);
  bias[7] = 100.0f;  // expert 7 always selected first
  auto r = route(z, bias, layout, o);
  for (int t = 0; t < 64; ++t) {
    CHECK(r.expert(t, 0) == 7);
    CHECK(r.weight(t, 0) == Catch::Approx(softmax_row(z, t)[7]).epsilon(1e-6));
  }
  o.score = ScoreFn::sigmoid;
  auto rs = route(z, bias, layout, o);
  CHECK(rs.weight(5, 0) == Catch::Approx(1.0 / (1.0 + std::exp(-double(z(5, 7))))).epsilon(1e-6));
  o.normalize = true;
  auto rn = route(z, bias, layout, o);
  CHECK(rn.weight(5, 0) + rn.weight(5, 1) == Catch::Approx(1.0).epsilon(1e-6));
}

TEST_CASE("capacity edge cases", "[routing]") {
  auto layout = ExpertLayout::regular(4, 2, 2);  // 8 experts, 4 ranks, 2 nodes
  GateOptions o;
  o.k = 2;
  for (auto ov : {Overflow::drop_lowest, Overflow::reroute, Overflow::dropless}) {
    o.overflow = ov;
    INFO("overflow policy " << int(ov));
    SECTION("zero tokens") {
      MatrixRf z(0, 8);
      auto r = route(z, kNoBias, layout, o);
      CHECK(r.expert.rows() == 0);
      CHECK(r.num_dropped == 0);
      CHECK(r.rank_count == std::vector<int64_t>(4, 0));
    }
    SECTION("k equal to the expert count") {
      o.k = 8;
      o.capacity_factor = 1.0;  // exactly S*k/P per rank: nothing can overflow
      auto z = random_logits(33, 8, 2);
      auto r = route(z, kNoBias, layout, o);
      check_invariants(r, layout, o);
      CHECK(r.num_dropped == 0);
      CHECK(r.expert_count == std::vector<int64_t>(8, 33));
    }
    SECTION("all tokens to one expert") {
      auto z = random_logits(40, 8, 3, 0.1f);
      z.col(5).array() += 10.0f;
      o.capacity_factor = 1.0;  // 20 copies per rank
      auto r = route(z, kNoBias, layout, o);
      check_invariants(r, layout, o);
      if (ov == Overflow::dropless) {
        CHECK(r.expert_count[5] == 40);
        CHECK(r.num_dropped == 0);
      } else if (ov == Overflow::drop_lowest) {
        CHECK(r.expert_count[5] <= 20);
        CHECK(r.rank_count[2] == 20);
        CHECK(r.num_dropped == 80 - 20 - (r.rank_count[0] + r.rank_count[1] + r.rank_count[3]));
        // The kept copies on expert 5 are the 20 highest-probability ones.
        auto tk = select_topk(z, kNoBias, layout, o);
        std::vector<float> kept, lost;
        for (int t = 0; t < 40; ++t)
          for (int j = 0; j < 2; ++j)
            if (layout.rank_of(tk.expert(t, j)) == 2)
              (r.dropped(t, j) ? lost : kept).push_back(tk.score(t, j));
        CHECK(*std::min_element(kept.begin(), kept.end()) >=
              *std::max_element(lost.begin(), lost.end()));
      } else {
        CHECK(r.num_dropped == 0);  // total capacity 80 = S*k: everything finds room
        CHECK(r.num_rerouted > 0);
        CHECK(r.rank_count == std::vector<int64_t>(4, 20));
        // Token order: the first tokens keep expert 5.
        CHECK(r.expert(0, 0) == 5);
      }
    }
    SECTION("capacity 0") {
      auto z = random_logits(16, 8, 4);
      o.capacity_factor = 0.0;
      auto r = route(z, kNoBias, layout, o);
      check_invariants(r, layout, o);
      if (ov == Overflow::dropless)
        CHECK(r.num_dropped == 0);
      else
        CHECK(r.num_dropped == 32);
    }
  }
}

TEST_CASE("plan capacities and reroute respect every destination", "[routing]") {
  auto layout = ExpertLayout::regular(4, 4, 2);  // 16 experts
  auto z = random_logits(500, 16, 5);
  GateOptions o;
  o.k = 4;
  o.capacity_per_rank = capacity_from_plan({0.5, 0.3, 0.1, 0.1}, 500, 4, 1.0);
  CHECK(o.capacity_per_rank == std::vector<int64_t>{1000, 600, 200, 200});
  for (auto ov : {Overflow::drop_lowest, Overflow::reroute}) {
    o.overflow = ov;
    auto r = route(z, kNoBias, layout, o);
    check_invariants(r, layout, o);
    CHECK(r.rank_count[2] == 200);
    if (ov == Overflow::reroute) CHECK(r.num_dropped == 0);
    if (ov == Overflow::drop_lowest) CHECK(r.num_dropped > 0);
  }
  CHECK(uniform_capacity(10, 3, 4, 1.25) == std::vector<int64_t>(4, 10));  // ceil(9.375)
}

TEST_CASE("node-limited routing keeps each token on at most M nodes", "[routing]") {
  auto layout = ExpertLayout::regular(8, 2, 2);  // 16 experts on 4 nodes of 4 experts
  auto z = random_logits(300, 16, 6);
  GateOptions o;
  o.k = 4;
  o.max_nodes = 2;
  o.node_score_top = 2;
  for (auto ov : {Overflow::dropless, Overflow::reroute}) {
    o.overflow = ov;
    o.capacity_factor = 1.0;
    auto r = route(z, kNoBias, layout, o);
    check_invariants(r, layout, o);
    for (int t = 0; t < 300; ++t) {
      // Brute force: the two nodes with the largest sum of their top-2 logits.
      std::vector<std::pair<float, int>> g;
      for (int node = 0; node < 4; ++node) {
        std::vector<float> v;
        for (int e = 4 * node; e < 4 * node + 4; ++e) v.push_back(z(t, e));
        std::sort(v.rbegin(), v.rend());
        g.push_back({-(v[0] + v[1]), node});
      }
      std::sort(g.begin(), g.end());
      std::set<int> allowed{g[0].second, g[1].second};
      for (int j = 0; j < 4; ++j)
        if (!r.dropped(t, j)) CHECK(allowed.count(layout.node_of_expert(r.expert(t, j))) == 1);
    }
  }
  o.max_nodes = 1;
  o.k = 5;  // one node holds only 4 experts
  CHECK_THROWS_AS(route(z, kNoBias, layout, o), tamoe::Error);
}

TEST_CASE("NaN and Inf logits are rejected naming token and expert", "[routing]") {
  auto layout = ExpertLayout::regular(2, 4, 1);
  auto z = random_logits(6, 8, 7);
  z(3, 5) = std::numeric_limits<float>::quiet_NaN();
  GateOptions o;
  try {
    route(z, kNoBias, layout, o);
    FAIL("no error for a NaN logit");
  } catch (const tamoe::Error& e) {
    CHECK(std::string(e.what()) ==
          "route: logits: expected finite values, found nan at token 3, "
          "expert 5");
  }
  z(3, 5) = 0.0f;
  z(4, 1) = -std::numeric_limits<float>::infinity();
  try {
    route(z, kNoBias, layout, o);
    FAIL("no error for an Inf logit");
  } catch (const tamoe::Error& e) {
    CHECK(std::string(e.what()).find("token 4, expert 1") != std::string::npos);
  }
  z(4, 1) = 0.0f;
  Eigen::VectorXf bias = Eigen::VectorXf::Zero(7);
  CHECK_THROWS_AS(route(z, bias, layout, o), tamoe::Error);  // wrong size
  o.k = 9;
  CHECK_THROWS_AS(route(z, kNoBias, layout, o), tamoe::Error);
}

TEST_CASE("routing is deterministic", "[routing]") {
  auto layout = ExpertLayout::regular(8, 4, 4);
  // Coarse logits make many exact ties.
  auto z = random_logits(2000, 32, 8);
  z = (z.array() * 2.0f).round() / 2.0f;
  GateOptions o;
  o.k = 4;
  o.max_nodes = 1;
  o.capacity_factor = 0.8;
  for (auto ov : {Overflow::drop_lowest, Overflow::reroute}) {
    o.overflow = ov;
    auto a = route(z, kNoBias, layout, o);
    auto b = route(z, kNoBias, layout, o);
    CHECK(a.expert == b.expert);
    CHECK(a.weight == b.weight);
    CHECK(a.dropped == b.dropped);
    check_invariants(a, layout, o);
  }
}
