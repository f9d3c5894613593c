#include <cmath>
#include <vector>

#include "catch_compat.h"
#include "runtime/error.h"
#include "train/optimizer.h"
#include "train/param_registry.h"
#include "train/rng.h"

using namespace tamoe::train;

namespace {

MatrixRf random_matrix(Eigen::Index rows, Eigen::Index cols, Rng& rng) {
  MatrixRf m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(rng.normal());
  return m;
}

}  // namespace

TEST_CASE("registry: names, flatten/unflatten order, subsets", "[train][optim]") {
  Param<float> a(2, 3), b(1, 4);
  ParamRegistry reg;
  reg.add("a", a);
  reg.add("layer", {{"w", &b}});
  REQUIRE(reg.size() == 2);
  REQUIRE(reg.numel() == 10);
  REQUIRE(reg.entries()[1].name == "layer.w");
  REQUIRE(reg.find("layer.w") == &b);
  REQUIRE(reg.find("w") == nullptr);
  REQUIRE_THROWS_AS(reg.add("a", b), tamoe::Error);
  REQUIRE_THROWS_AS(reg.add("", b), tamoe::Error);

  std::vector<float> v(10);
  for (int i = 0; i < 10; ++i) v[i] = static_cast<float>(i);
  reg.unflatten_values(v);
  REQUIRE(a.value(1, 0) == 3.0f);  // row-major
  REQUIRE(b.value(0, 3) == 9.0f);
  REQUIRE(reg.flatten_values() == v);
  reg.unflatten_grads(v);
  REQUIRE(reg.flatten_grads() == v);
  reg.zero_grad();
  REQUIRE(a.grad.isZero());
  REQUIRE(b.grad.isZero());
  REQUIRE_THROWS_AS(reg.unflatten_values(std::vector<float>(9)), tamoe::Error);

  const ParamRegistry sub =
      reg.subset([](const std::string& n) { return n.rfind("layer.", 0) == 0; });
  REQUIRE(sub.size() == 1);
  REQUIRE(sub.numel() == 4);
  REQUIRE(sub.find("layer.w") == &b);
}

TEST_CASE("optim: Adam matches a double-precision reference with bias correction",
          "[train][optim]") {
  Rng rng(21);
  Param<float> p(3, 4);
  p.value = random_matrix(3, 4, rng);
  ParamRegistry reg;
  reg.add("p", p);
  AdamOptions o;
  o.lr = 0.01;
  o.weight_decay = 0.1;
  Adam adam(reg, o);
  REQUIRE(std::string(adam.kind()) == "adam");

  Eigen::MatrixXd ref = p.value.cast<double>(), m = Eigen::MatrixXd::Zero(3, 4), v = m;
  for (int t = 1; t <= 6; ++t) {
    p.grad = random_matrix(3, 4, rng);
    const Eigen::MatrixXd g = p.grad.cast<double>();
    adam.step();
    ref *= 1 - o.lr * o.weight_decay;
    m = o.beta1 * m + (1 - o.beta1) * g;
    v = o.beta2 * v + (1 - o.beta2) * g.cwiseProduct(g);
    const Eigen::MatrixXd mhat = m / (1 - std::pow(o.beta1, t));
    const Eigen::MatrixXd vhat = v / (1 - std::pow(o.beta2, t));
    ref.array() -= o.lr * mhat.array() / (vhat.array().sqrt() + o.eps);
    REQUIRE((p.value.cast<double>() - ref).cwiseAbs().maxCoeff() <= 1e-6);
  }
  REQUIRE(adam.steps() == 6);
  // The first step moves each weight by about lr (m/sqrt(v) = sign(g) after bias correction).
  Param<float> q(1, 3);
  q.grad << 1e-3f, -5.0f, 2.0f;
  ParamRegistry rq;
  rq.add("q", q);
  Adam first(rq, AdamOptions{0.1, 0.9, 0.999, 1e-8, 0});
  first.step();
  REQUIRE(q.value(0, 0) == Catch::Approx(-0.1).epsilon(1e-4));
  REQUIRE(q.value(0, 1) == Catch::Approx(0.1).epsilon(1e-4));
  REQUIRE(first.state().size() == 2);
  REQUIRE(first.state()[1].name == "v/q");
  REQUIRE_THROWS_AS(Adam(rq, AdamOptions{0.1, 1.0}), tamoe::Error);
}

TEST_CASE("optim: Adam and SGD minimize a quadratic", "[train][optim]") {
  // f(p) = 0.5 * ||p - target||^2, gradient p - target.
  Rng rng(22);
  const MatrixRf target = random_matrix(4, 5, rng);
  for (int which = 0; which < 3; ++which) {
    Param<float> p(4, 5);
    ParamRegistry reg;
    reg.add("p", p);
    std::unique_ptr<Optimizer> opt;
    if (which == 0) opt = std::make_unique<Adam>(reg, AdamOptions{0.05});
    if (which == 1) opt = std::make_unique<Sgd>(reg, SgdOptions{0.1});
    if (which == 2) opt = std::make_unique<Sgd>(reg, SgdOptions{0.05, 0.9});
    for (int t = 0; t < 400; ++t) {
      p.grad = p.value - target;
      opt->step();
    }
    INFO("optimizer " << which);
    REQUIRE((p.value - target).cwiseAbs().maxCoeff() < 1e-3);
  }
}

TEST_CASE("optim: SGD with momentum and weight decay matches the formula", "[train][optim]") {
  Param<float> p(1, 2);
  p.value << 1.0f, -2.0f;
  ParamRegistry reg;
  reg.add("p", p);
  Sgd sgd(reg, SgdOptions{0.1, 0.5, 0.01});
  double p0 = 1.0, buf = 0;
  const double grads[] = {0.3, -0.2, 0.7};
  for (int t = 0; t < 3; ++t) {
    p.grad << static_cast<float>(grads[t]), 0.0f;
    sgd.step();
    const double g = grads[t] + 0.01 * p0;
    buf = t == 0 ? g : 0.5 * buf + g;
    p0 -= 0.1 * buf;
    REQUIRE(p.value(0, 0) == Catch::Approx(p0).epsilon(1e-6));
  }
  REQUIRE(sgd.state().size() == 1);
  REQUIRE(Sgd(reg, SgdOptions{0.1}).state().empty());
}

TEST_CASE("rng: seeded, state round trip, distributions", "[train][optim]") {
  Rng a(5), b(5);
  for (int i = 0; i < 10; ++i) REQUIRE(a.next() == b.next());
  const std::string s = a.state();
  const uint64_t x = a.next();
  Rng c(0);
  c.set_state(s);
  REQUIRE(c.next() == x);
  REQUIRE(c == a);
  REQUIRE_THROWS_AS(c.set_state("not a state"), tamoe::Error);
  REQUIRE_THROWS_AS(c.set_state(s + " 17"), tamoe::Error);

  Rng r(6);
  std::vector<int> hist(7, 0);
  double sum = 0, sq = 0;
  const int n = 70000;
  for (int i = 0; i < n; ++i) {
    ++hist[r.below(7)];
    const double z = r.normal();
    sum += z;
    sq += z * z;
    const double u = r.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
  for (int h : hist) REQUIRE(std::abs(h - n / 7) < 400);  // ~4.5 sigma
  REQUIRE(std::abs(sum / n) < 0.02);
  REQUIRE(sq / n == Catch::Approx(1.0).epsilon(0.03));
  REQUIRE_THROWS_AS(r.below(0), tamoe::Error);
}
