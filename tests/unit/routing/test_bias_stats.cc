#include <cmath>
#include <random>

#include "catch_compat.h"
#include "routing/bias_controller.h"
#include "routing/stats.h"
#include "runtime/error.h"

using namespace tamoe::route;

TEST_CASE("routing statistics split kept copies by rank, node and other nodes", "[routing]") {
  auto layout = ExpertLayout::regular(4, 2, 2);  // ranks 0,1 on node 0; 2,3 on node 1
  MatrixRf z(4, 8);
  z.setZero();
  // token -> (top expert, second expert)
  const int pick[4][2] = {{0, 1}, {2, 4}, {3, 6}, {7, 5}};
  for (int t = 0; t < 4; ++t) {
    z(t, pick[t][0]) = 5.0f;
    z(t, pick[t][1]) = 4.0f;
  }
  GateOptions o;
  o.k = 2;
  o.capacity_per_rank = {2, 2, 2, 1};  // rank 3 (experts 6,7) takes one copy
  auto r = route(z, Eigen::VectorXf(), layout, o);
  CHECK(r.num_dropped == 1);
  Eigen::VectorXd target = Eigen::VectorXd::Constant(8, 1.0 / 8);
  auto st = routing_stats(r, layout, 0, target);
  CHECK(st.copies == 8);
  CHECK(st.kept == 7);
  CHECK(st.dropped == 1);
  CHECK(st.drop_share == Catch::Approx(1.0 / 8));
  CHECK(st.share_on_rank == Catch::Approx(2.0 / 7));     // experts 0, 1
  CHECK(st.share_in_node == Catch::Approx(2.0 / 7));     // experts 2, 3
  CHECK(st.share_cross_node == Catch::Approx(3.0 / 7));  // 4, 5 and one of 6/7
  CHECK(st.share_on_rank + st.share_in_node + st.share_cross_node == Catch::Approx(1.0));
  double kl = 0;
  for (int e = 0; e < 8; ++e)
    if (st.expert_share[e] > 0) kl += st.expert_share[e] * std::log(st.expert_share[e] * 8);
  CHECK(st.kl_to_target == Catch::Approx(kl));
  CHECK(std::isnan(routing_stats(r, layout, 0, Eigen::VectorXd()).kl_to_target));
  CHECK_THROWS_AS(routing_stats(r, layout, 4, target), tamoe::Error);
  CHECK(!st.to_string().empty());
}

TEST_CASE("bias controller updates toward the target", "[routing]") {
  Eigen::VectorXd target(4);
  target << 0.4, 0.3, 0.2, 0.1;
  BiasControllerOptions opt;
  opt.rate = 0.5;
  opt.center = false;
  BiasController sign(target, opt);
  sign.update({25, 25, 25, 25});
  CHECK(sign.bias()[0] == Catch::Approx(0.5));
  CHECK(sign.bias()[2] == Catch::Approx(-0.5));
  CHECK(sign.bias()[3] == Catch::Approx(-0.5));
  sign.update({0, 0, 0, 0});  // no assignments: no update
  CHECK(sign.steps() == 1);
  opt.update = BiasUpdate::proportional;
  opt.center = true;
  BiasController prop(target, opt);
  prop.update({25, 25, 25, 25});
  Eigen::VectorXd expect = 0.5 * (target.array() - 0.25).matrix();
  expect.array() -= expect.mean();
  for (int e = 0; e < 4; ++e) CHECK(prop.bias()[e] == Catch::Approx(expect[e]).margin(1e-7));
  CHECK_THROWS_AS(prop.update({1, 2, 3}), tamoe::Error);
  Eigen::VectorXd bad(4);
  bad << 0.5, 0.5, 0.0, 0.0;
  CHECK_THROWS_AS(BiasController(bad, opt), tamoe::Error);
}
