// Layer gradients against central finite differences in double precision.
#include <cmath>
#include <functional>
#include <vector>

#include "catch_compat.h"
#include "runtime/error.h"
#include "train/layers.h"
#include "train/loss.h"

using namespace tamoe::train;

namespace {

MatrixRd random_matrix(Eigen::Index rows, Eigen::Index cols, Rng& rng, double scale = 1.0) {
  MatrixRd m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = scale * rng.normal();
  return m;
}

struct Checked {
  std::string name;
  MatrixRd* value;       // perturbed by the finite differences
  const MatrixRd* grad;  // the analytic gradient to compare
};

// Relative error ||analytic - numeric|| / max(||analytic||, ||numeric||) for each tensor, with the
// numeric gradient from central differences of loss() (step h, in double).
void check_gradients(const std::function<double()>& loss, const std::vector<Checked>& tensors,
                     double tol = 1e-6) {
  const double h = 1e-5;
  for (const auto& t : tensors) {
    MatrixRd numeric(t.value->rows(), t.value->cols());
    for (Eigen::Index i = 0; i < t.value->size(); ++i) {
      double& v = t.value->data()[i];
      const double orig = v;
      v = orig + h;
      const double up = loss();
      v = orig - h;
      const double down = loss();
      v = orig;
      numeric.data()[i] = (up - down) / (2 * h);
    }
    const double scale = std::max(t.grad->norm(), numeric.norm());
    REQUIRE(scale > 0);
    const double rel = (*t.grad - numeric).norm() / scale;
    INFO(t.name << ": relative error " << rel << " (|grad| " << t.grad->norm() << ")");
    CHECK(rel <= tol);
  }
}

// L = sum(R .* y), so dL/dy = R.
double weighted_sum(const MatrixRd& y, const MatrixRd& r) {
  return y.cwiseProduct(r).sum();
}

}  // namespace

TEST_CASE("layers: Linear gradients match finite differences", "[train][layers]") {
  Rng rng(1);
  Linear<double> lin(5, 3, rng);
  lin.bias.value = random_matrix(1, 3, rng);
  MatrixRd x = random_matrix(4, 5, rng);
  const MatrixRd r = random_matrix(4, 3, rng);
  lin.forward(x);
  const MatrixRd dx = lin.backward(r);
  const MatrixRd dw = lin.weight.grad, db = lin.bias.grad;
  check_gradients(
      [&] { return weighted_sum(lin.forward(x), r); },
      {{"x", &x, &dx}, {"weight", &lin.weight.value, &dw}, {"bias", &lin.bias.value, &db}});
  // y = x W + b against a plain loop.
  const MatrixRd y = lin.forward(x);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) {
      double ref = lin.bias.value(0, j);
      for (int k = 0; k < 5; ++k) ref += x(i, k) * lin.weight.value(k, j);
      REQUIRE(y(i, j) == Catch::Approx(ref).epsilon(1e-12));
    }
  // Gradients accumulate over backward calls.
  lin.backward(r);
  REQUIRE((lin.weight.grad - 2 * dw).norm() <= 1e-12 * dw.norm());
  REQUIRE_THROWS_AS(lin.forward(MatrixRd::Zero(2, 4)), tamoe::Error);
  REQUIRE_THROWS_AS(lin.backward(MatrixRd::Zero(3, 3)), tamoe::Error);
}

TEST_CASE("layers: LayerNorm gradients match finite differences", "[train][layers]") {
  Rng rng(2);
  LayerNorm<double> ln(6);
  ln.gamma.value = random_matrix(1, 6, rng);
  ln.beta.value = random_matrix(1, 6, rng);
  MatrixRd x = random_matrix(5, 6, rng, 2.0);
  const MatrixRd r = random_matrix(5, 6, rng);
  const MatrixRd y = ln.forward(x);
  const MatrixRd dx = ln.backward(r);
  const MatrixRd dg = ln.gamma.grad, dbeta = ln.beta.grad;
  check_gradients(
      [&] { return weighted_sum(ln.forward(x), r); },
      {{"x", &x, &dx}, {"gamma", &ln.gamma.value, &dg}, {"beta", &ln.beta.value, &dbeta}});
  // Normalized rows: with gamma 1, beta 0 each row has mean 0 and variance var/(var+eps) ~ 1.
  LayerNorm<double> plain(6);
  const MatrixRd z = plain.forward(x);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(z.row(i).mean() == Catch::Approx(0.0).margin(1e-12));
    REQUIRE(z.row(i).squaredNorm() / 6 == Catch::Approx(1.0).epsilon(1e-4));
  }
}

TEST_CASE("layers: ReLU and GELU gradients match finite differences", "[train][layers]") {
  Rng rng(3);
  MatrixRd x = random_matrix(4, 7, rng);
  // Keep ReLU inputs away from the kink at 0, where the difference quotient is not the derivative.
  for (Eigen::Index i = 0; i < x.size(); ++i)
    if (std::abs(x.data()[i]) < 1e-2) x.data()[i] = 0.5;
  const MatrixRd r = random_matrix(4, 7, rng);
  ReLU<double> relu;
  relu.forward(x);
  const MatrixRd dx_relu = relu.backward(r);
  check_gradients([&] { return weighted_sum(relu.forward(x), r); }, {{"relu x", &x, &dx_relu}});
  GELU<double> gelu;
  const MatrixRd y = gelu.forward(x);
  const MatrixRd dx_gelu = gelu.backward(r);
  check_gradients([&] { return weighted_sum(gelu.forward(x), r); }, {{"gelu x", &x, &dx_gelu}});
  // Known values: GELU(1) = Phi(1) = 0.8413447460685429, GELU(-1) = -0.15865525393145707.
  const MatrixRd v = (MatrixRd(1, 3) << 1.0, -1.0, 0.0).finished();
  const MatrixRd g = gelu.forward(v);
  REQUIRE(g(0, 0) == Catch::Approx(0.8413447460685429).epsilon(1e-14));
  REQUIRE(g(0, 1) == Catch::Approx(-0.15865525393145707).epsilon(1e-14));
  REQUIRE(g(0, 2) == 0.0);
  REQUIRE(relu.forward(v)(0, 1) == 0.0);
}

TEST_CASE("layers: softmax cross-entropy value, gradient and accuracy", "[train][layers]") {
  Rng rng(4);
  MatrixRd z = random_matrix(6, 5, rng, 3.0);
  const std::vector<int> y{0, 4, 2, 2, 1, 3};
  const auto ce = softmax_cross_entropy<double>(z, y);
  double ref = 0;
  int64_t correct = 0;
  for (int i = 0; i < 6; ++i) {
    double s = 0;
    for (int c = 0; c < 5; ++c) s += std::exp(z(i, c));
    ref += -std::log(std::exp(z(i, y[i])) / s) / 6;
    Eigen::Index am = 0;
    z.row(i).maxCoeff(&am);
    correct += am == y[i];
  }
  REQUIRE(ce.loss == Catch::Approx(ref).epsilon(1e-12));
  REQUIRE(ce.correct == correct);
  REQUIRE(count_correct<double>(z, y) == correct);
  check_gradients([&] { return softmax_cross_entropy<double>(z, y).loss; },
                  {{"logits", &z, &ce.grad}});
  // Large logits stay finite (max subtraction).
  const MatrixRd big = (MatrixRd(1, 2) << 1000.0, 0.0).finished();
  REQUIRE(softmax_cross_entropy<double>(big, std::vector<int>{1}).loss == Catch::Approx(1000.0));
  REQUIRE_THROWS_AS(softmax_cross_entropy<double>(z, std::vector<int>{0, 1}), tamoe::Error);
  REQUIRE_THROWS_AS(softmax_cross_entropy<double>(z, std::vector<int>{0, 5, 0, 0, 0, 0}),
                    tamoe::Error);
  const auto empty = softmax_cross_entropy<double>(MatrixRd(0, 5), std::vector<int>{});
  REQUIRE(empty.loss == 0.0);
  REQUIRE(empty.grad.rows() == 0);
}

TEST_CASE("layers: expert FFN block, gradients and empty token blocks", "[train][layers]") {
  Rng rng(5);
  ExpertFFN<double> ffn(6, 10, rng);
  ffn.fc1.bias.value = random_matrix(1, 10, rng, 0.1);
  ffn.fc2.bias.value = random_matrix(1, 6, rng, 0.1);
  MatrixRd x = random_matrix(5, 6, rng);
  const MatrixRd r = random_matrix(5, 6, rng);
  ffn.forward(x);
  const MatrixRd dx = ffn.backward(r);
  std::vector<Checked> checked{{"x", &x, &dx}};
  std::vector<MatrixRd> grads;
  grads.reserve(4);
  for (auto& p : ffn.params()) grads.push_back(p.param->grad);
  int i = 0;
  for (auto& p : ffn.params()) checked.push_back({p.name, &p.param->value, &grads[i++]});
  check_gradients([&] { return weighted_sum(ffn.forward(x), r); }, checked);
  REQUIRE(ffn.params().size() == 4);
  REQUIRE(ffn.params()[2].name == "fc2.weight");

  // A block with no tokens: empty output, no gradient change.
  const MatrixRd empty = ffn.forward(MatrixRd(0, 6));
  REQUIRE(empty.rows() == 0);
  REQUIRE(empty.cols() == 6);
  const MatrixRd before = ffn.fc1.weight.grad;
  REQUIRE(ffn.backward(MatrixRd(0, 6)).rows() == 0);
  REQUIRE(ffn.fc1.weight.grad == before);
}

TEST_CASE("layers: a composed model's gradients match finite differences", "[train][layers]") {
  // Linear -> LayerNorm -> residual expert FFN -> ReLU -> Linear -> softmax cross-entropy.
  Rng rng(6);
  Linear<double> in(7, 6, rng);
  LayerNorm<double> ln(6);
  ExpertFFN<double> ffn(6, 9, rng);
  ReLU<double> relu;
  Linear<double> out(6, 4, rng, Init::xavier_uniform);
  ln.gamma.value = MatrixRd::Ones(1, 6) + random_matrix(1, 6, rng, 0.3);
  MatrixRd x = random_matrix(8, 7, rng);
  const std::vector<int> y{0, 1, 2, 3, 3, 2, 1, 0};
  auto forward = [&]() {
    const MatrixRd h = ln.forward(in.forward(x));
    return out.forward(relu.forward(residual_add(h, ffn.forward(h))));
  };
  const auto ce = softmax_cross_entropy<double>(forward(), y);
  const MatrixRd dh_res = relu.backward(out.backward(ce.grad));
  const MatrixRd dh = dh_res + ffn.backward(dh_res);
  const MatrixRd dx = in.backward(ln.backward(dh));

  std::vector<NamedParam<double>> all;
  for (auto* l : {&in, &out})
    for (auto& p : l->params()) all.push_back(p);
  for (auto& p : ln.params()) all.push_back(p);
  for (auto& p : ffn.params()) all.push_back(p);
  std::vector<MatrixRd> grads;
  grads.reserve(all.size());
  for (auto& p : all) grads.push_back(p.param->grad);
  std::vector<Checked> checked{{"x", &x, &dx}};
  for (size_t i = 0; i < all.size(); ++i)
    checked.push_back({all[i].name, &all[i].param->value, &grads[i]});
  check_gradients([&] { return softmax_cross_entropy<double>(forward(), y).loss; }, checked);
}

TEST_CASE("layers: float and double paths agree; init is seeded and bounded", "[train][layers]") {
  Rng rd(9), rf(9);
  ExpertFFN<double> d(8, 16, rd);
  ExpertFFN<float> f(8, 16, rf);
  REQUIRE(f.fc1.weight.value == d.fc1.weight.value.cast<float>());
  Rng rx(10);
  const MatrixRd x = random_matrix(3, 8, rx);
  const MatrixRd yd = d.forward(x);
  const MatrixRf yf = f.forward(x.cast<float>());
  REQUIRE((yf.cast<double>() - yd).cwiseAbs().maxCoeff() <=
          1e-5 * std::max(1.0, yd.cwiseAbs().maxCoeff()));

  Rng r1(11);
  Linear<float> k(200, 100, r1, Init::kaiming_uniform);
  const double kb = std::sqrt(6.0 / 200);
  REQUIRE(k.weight.value.cwiseAbs().maxCoeff() <= kb);
  // U(-b, b) has variance b^2 / 3.
  REQUIRE(k.weight.value.cast<double>().squaredNorm() / 20000 ==
          Catch::Approx(kb * kb / 3).epsilon(0.05));
  REQUIRE(k.bias.value.isZero());
  Rng r2(11);
  Linear<float> xav(200, 100, r2, Init::xavier_uniform);
  REQUIRE(xav.weight.value.cwiseAbs().maxCoeff() <= std::sqrt(6.0 / 300));
  Rng r3(12);
  REQUIRE(Linear<float>(200, 100, r3).weight.value != k.weight.value);
}
