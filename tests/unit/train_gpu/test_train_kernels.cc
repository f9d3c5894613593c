// The GPU training path's kernels and cuBLAS Linear against double-precision host references
// (GELU, LayerNorm, softmax cross-entropy, the gate's softmax backward, column sums, Linear
// forward/backward) and Adam against the host train::Adam. Skips (passes with a warning) on a
// machine without a CUDA device.
#include <cuda_runtime.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "catch_compat.h"
#include "train/gpu/device_ops.h"
#include "train/gpu/train_kernels.h"
#include "train/optimizer.h"
#include "train/rng.h"

using namespace tamoe::train;
using namespace tamoe::train::gpu;

namespace {

bool have_gpu() {
  if (cuda_device_available()) return true;
  WARN("SKIP: no CUDA device on this machine");
  return false;
}

std::vector<float> randv(size_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

// A device copy of a host vector, freed at scope end.
template <typename T>
struct Dev {
  tamoe::coll::DeviceBuffer buf;
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(const std::vector<T>& v) : n(v.size()) {
    p = typed<T>(buf, static_cast<int64_t>(n));
    upload(p, v.data(), n * sizeof(T), nullptr);
  }
  explicit Dev(size_t count) : n(count) { p = typed<T>(buf, static_cast<int64_t>(n)); }
  std::vector<T> get() const { return download_vector(p, static_cast<int64_t>(n), nullptr); }
};

// Largest |a - b| relative to the largest |b| (at least `floor`).
double rel_err(const std::vector<float>& a, const std::vector<double>& b, double floor = 1e-3) {
  REQUIRE(a.size() == b.size());
  double d = 0, m = floor;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
    m = std::max(m, std::abs(b[i]));
  }
  return d / m;
}

double gelu_d(double x) {
  return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
}
double gelu_grad_d(double x) {
  return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) +
         x * std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi);
}

}  // namespace

TEST_CASE("gpu kernels: GELU forward and backward", "[train][gpu]") {
  if (!have_gpu()) return;
  Rng rng(1);
  const size_t n = 3001;
  auto x = randv(n, rng, 2.5), dy = randv(n, rng);
  Dev<float> dx(x), ddy(dy), y(n), dxo(n);
  REQUIRE(gelu_forward(dx.p, y.p, n, nullptr) == cudaSuccess);
  REQUIRE(gelu_backward(dx.p, ddy.p, dxo.p, n, nullptr) == cudaSuccess);
  std::vector<double> ry(n), rdx(n);
  for (size_t i = 0; i < n; ++i) {
    ry[i] = gelu_d(x[i]);
    rdx[i] = dy[i] * gelu_grad_d(x[i]);
  }
  CHECK(rel_err(y.get(), ry) < 1e-6);
  CHECK(rel_err(dxo.get(), rdx) < 1e-6);
}

TEST_CASE("gpu kernels: LayerNorm forward and backward", "[train][gpu]") {
  if (!have_gpu()) return;
  Rng rng(2);
  for (int cols : {5, 32, 37, 64, 200}) {
    INFO("cols " << cols);
    const int64_t rows = 13;
    const double eps = 1e-5;
    auto x = randv(rows * cols, rng, 3.0), dy = randv(rows * cols, rng);
    auto gamma = randv(cols, rng), beta = randv(cols, rng);
    auto dg0 = randv(cols, rng), db0 = randv(cols, rng);     // gradients accumulate onto these
    for (int64_t i = 0; i < rows * cols; ++i) x[i] += 1.5f;  // a mean far from 0
    Dev<float> X(x), DY(dy), G(gamma), B(beta), DG(dg0), DB(db0);
    Dev<float> Y(rows * cols), XH(rows * cols), RS(rows), DX(rows * cols);
    REQUIRE(layernorm_forward(X.p, G.p, B.p, rows, cols, static_cast<float>(eps), Y.p, XH.p, RS.p,
                              nullptr) == cudaSuccess);
    REQUIRE(layernorm_backward(DY.p, XH.p, RS.p, G.p, rows, cols, DX.p, DG.p, DB.p, nullptr) ==
            cudaSuccess);
    std::vector<double> ry(rows * cols), rdx(rows * cols), rdg(dg0.begin(), dg0.end()),
        rdb(db0.begin(), db0.end());
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      for (int c = 0; c < cols; ++c) mean += x[r * cols + c];
      mean /= cols;
      for (int c = 0; c < cols; ++c) var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
      var /= cols;
      const double rs = 1 / std::sqrt(var + eps);
      std::vector<double> xh(cols), g(cols);
      double mg = 0, mgx = 0;
      for (int c = 0; c < cols; ++c) {
        xh[c] = (x[r * cols + c] - mean) * rs;
        ry[r * cols + c] = gamma[c] * xh[c] + beta[c];
        g[c] = dy[r * cols + c] * gamma[c];
        mg += g[c] / cols;
        mgx += g[c] * xh[c] / cols;
        rdg[c] += dy[r * cols + c] * xh[c];
        rdb[c] += dy[r * cols + c];
      }
      for (int c = 0; c < cols; ++c) rdx[r * cols + c] = rs * (g[c] - mg - xh[c] * mgx);
    }
    CHECK(rel_err(Y.get(), ry) < 1e-5);
    CHECK(rel_err(DX.get(), rdx) < 1e-5);
    CHECK(rel_err(DG.get(), rdg) < 1e-5);
    CHECK(rel_err(DB.get(), rdb) < 1e-5);
  }
}

TEST_CASE("gpu kernels: softmax cross-entropy", "[train][gpu]") {
  if (!have_gpu()) return;
  Rng rng(3);
  for (int classes : {3, 10, 45}) {
    INFO("classes " << classes);
    const int64_t rows = 37;
    auto z = randv(rows * classes, rng, 4.0);
    std::vector<int32_t> y(rows);
    for (auto& v : y) v = static_cast<int32_t>(rng.below(classes));
    z[0] = z[1] = 50.0f;  // a tie: arg max is the lower class
    y[0] = 1;
    Dev<float> Z(z), G(rows * classes);
    Dev<int32_t> Y(y), C(rows);
    Dev<double> L(rows);
    REQUIRE(softmax_cross_entropy(Z.p, Y.p, rows, classes, L.p, C.p, G.p, nullptr) == cudaSuccess);
    const auto loss = L.get();
    const auto corr = C.get();
    std::vector<double> rg(rows * classes);
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -1e300, s = 0;
      int arg = 0;
      for (int c = 0; c < classes; ++c)
        if (z[r * classes + c] > mx) {
          mx = z[r * classes + c];
          arg = c;
        }
      for (int c = 0; c < classes; ++c) s += std::exp(z[r * classes + c] - mx);
      const double ref = std::log(s) - (z[r * classes + y[r]] - mx);
      CHECK(loss[r] == Catch::Approx(ref).epsilon(1e-5).margin(1e-6));
      CHECK(corr[r] == (arg == y[r] ? 1 : 0));
      for (int c = 0; c < classes; ++c)
        rg[r * classes + c] =
            (std::exp(z[r * classes + c] - mx) / s - (c == y[r] ? 1.0 : 0.0)) / rows;
    }
    CHECK(corr[0] == 0);  // classes 0 and 1 tie, label 1: the lower class wins
    CHECK(rel_err(G.get(), rg) < 1e-5);
  }
}

TEST_CASE("gpu kernels: gate softmax backward with the aux gradient", "[train][gpu]") {
  if (!have_gpu()) return;
  Rng rng(4);
  const int64_t S = 21;
  const int N = 40, k = 3;
  auto z = randv(S * N, rng, 2.0), dw = randv(S * k, rng), aux = randv(S * N, rng);
  std::vector<int32_t> ids(S * k);
  std::vector<float> lse(S);
  for (int64_t t = 0; t < S; ++t) {
    double m = -1e300, s = 0;
    for (int e = 0; e < N; ++e) m = std::max(m, static_cast<double>(z[t * N + e]));
    for (int e = 0; e < N; ++e) s += std::exp(z[t * N + e] - m);
    lse[t] = static_cast<float>(m + std::log(s));
    for (int i = 0; i < k; ++i)  // distinct experts, one slot dropped now and then
      ids[t * k + i] = (t + i * 7) % 5 == 0 ? -1 : static_cast<int32_t>((t * 3 + i * 11) % N);
  }
  const float aux_w = 0.3f;
  Dev<float> Z(z), L(lse), DW(dw), A(aux), D(S * N);
  Dev<int32_t> I(ids);
  REQUIRE(gate_softmax_backward(Z.p, L.p, I.p, DW.p, A.p, aux_w, S, N, k, D.p, nullptr) ==
          cudaSuccess);
  std::vector<double> ref(S * N);
  for (int64_t t = 0; t < S; ++t) {
    std::vector<double> p(N), dp(N, 0.0);
    double dot = 0;
    for (int e = 0; e < N; ++e) p[e] = std::exp(static_cast<double>(z[t * N + e]) - lse[t]);
    for (int i = 0; i < k; ++i)
      if (ids[t * k + i] >= 0) dp[ids[t * k + i]] += dw[t * k + i];
    for (int e = 0; e < N; ++e) dot += p[e] * dp[e];
    for (int e = 0; e < N; ++e)
      ref[t * N + e] = p[e] * (dp[e] - dot) + static_cast<double>(aux_w) * aux[t * N + e];
  }
  CHECK(rel_err(D.get(), ref) < 1e-5);
}

TEST_CASE("gpu kernels: cuBLAS Linear forward/backward and column sums", "[train][gpu]") {
  if (!have_gpu()) return;
  Rng rng(5);
  const int64_t rows = 19;
  const int in = 23, out = 11;
  auto x = randv(rows * in, rng), w = randv(in * out, rng), b = randv(out, rng);
  auto dy = randv(rows * out, rng), dw0 = randv(in * out, rng), db0 = randv(out, rng);
  auto dx0 = randv(rows * in, rng);
  Dev<float> X(x), W(w), B(b), DY(dy), DW(dw0), DB(db0), DX(dx0), Y(rows * out);
  Blas blas(nullptr);
  linear_forward(blas, X.p, W.p, B.p, rows, in, out, Y.p);
  linear_backward(blas, X.p, W.p, DY.p, rows, in, out, DW.p, DB.p, DX.p, true);
  std::vector<double> ry(rows * out), rdw(dw0.begin(), dw0.end()), rdb(db0.begin(), db0.end()),
      rdx(dx0.begin(), dx0.end());
  for (int64_t r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      double s = b[o];
      for (int i = 0; i < in; ++i) {
        s += static_cast<double>(x[r * in + i]) * w[i * out + o];
        rdw[i * out + o] += static_cast<double>(x[r * in + i]) * dy[r * out + o];
        rdx[r * in + i] += static_cast<double>(dy[r * out + o]) * w[i * out + o];
      }
      ry[r * out + o] = s;
      rdb[o] += dy[r * out + o];
    }
  CHECK(rel_err(Y.get(), ry) < 1e-5);
  CHECK(rel_err(DW.get(), rdw) < 1e-5);
  CHECK(rel_err(DB.get(), rdb) < 1e-5);
  CHECK(rel_err(DX.get(), rdx) < 1e-5);
  // Without accumulation dx is overwritten; zero rows leave everything alone.
  linear_backward(blas, X.p, W.p, DY.p, rows, in, out, DW.p, nullptr, DX.p, false);
  for (int64_t i = 0; i < rows * in; ++i) rdx[i] -= dx0[i];
  CHECK(rel_err(DX.get(), rdx) < 1e-5);
  const auto before = DW.get();
  linear_backward(blas, X.p, W.p, DY.p, 0, in, out, DW.p, DB.p, DX.p, true);
  CHECK(DW.get() == before);
}

TEST_CASE("gpu kernels: Adam equals the host Adam", "[train][gpu]") {
  if (!have_gpu()) return;
  Rng rng(6);
  Param<float> p(7, 9);
  for (int64_t i = 0; i < p.value.size(); ++i) p.value.data()[i] = static_cast<float>(rng.normal());
  ParamRegistry reg;
  reg.add("p", p);
  AdamOptions o;
  o.lr = 3e-3;
  o.weight_decay = 0.01;
  Adam host(reg, o);
  const int64_t n = p.value.size();
  std::vector<float> v0(p.value.data(), p.value.data() + n);
  Dev<float> P(v0), G(n), M(std::vector<float>(n, 0.0f)), V(std::vector<float>(n, 0.0f));
  for (int step = 0; step < 4; ++step) {
    auto g = randv(n, rng, 0.1);
    const float scale = 0.5f;
    for (int64_t i = 0; i < n; ++i) p.grad.data()[i] = g[i] * scale;
    host.step();
    upload(G.p, g.data(), n * sizeof(float), nullptr);
    const double t = step + 1;
    AdamStep s;
    s.step_size = static_cast<float>(o.lr / (1 - std::pow(o.beta1, t)));
    s.inv_sqrt_bc2 = static_cast<float>(1 / std::sqrt(1 - std::pow(o.beta2, t)));
    s.decay = static_cast<float>(1 - o.lr * o.weight_decay);
    s.grad_scale = scale;
    REQUIRE(adam_step(P.p, G.p, M.p, V.p, n, s, nullptr) == cudaSuccess);
  }
  std::vector<double> ref(p.value.data(), p.value.data() + n);
  CHECK(rel_err(P.get(), ref) < 1e-6);
}
