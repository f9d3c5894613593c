// CUDA gate kernels against the host gate on random inputs: indices, drop masks and counts
// exactly, scores / weights / losses / gradients within 1e-5 relative. Skips without a GPU.
#include <cuda_runtime_api.h>

#include <cmath>
#include <random>
#include <vector>

#include "catch_compat.h"
#include "kernels/gate_kernels.h"
#include "routing/gate.h"
#include "routing/losses.h"

using namespace tamoe::route;
namespace K = tamoe::kernels;

namespace {

bool have_gpu() {
  int n = 0;
  const cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess || n == 0) {
    WARN("SKIPPED: no CUDA device (" << (rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices")
                                     << "); the CUDA-vs-host comparison did not run");
    return false;
  }
  return true;
}

#define CUDA_OK(call) REQUIRE((call) == cudaSuccess)

template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) {
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&p), sizeof(T) * (count ? count : 1)) ==
            cudaSuccess);
  }
  Dev(const T* host, size_t count) : Dev(count) {
    if (count) REQUIRE(cudaMemcpy(p, host, sizeof(T) * count, cudaMemcpyHostToDevice) == 0);
  }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  std::vector<T> get() const {
    std::vector<T> h(n);
    if (n) REQUIRE(cudaMemcpy(h.data(), p, sizeof(T) * n, cudaMemcpyDeviceToHost) == 0);
    return h;
  }
};

bool close(double a, double b, double rel, double floor_abs) {
  return std::abs(a - b) <= rel * std::abs(b) + floor_abs;
}

struct Case {
  int tokens, ranks, experts_per_rank, ranks_per_node, k;
  ScoreFn score;
  int max_nodes;
  Overflow overflow;
  bool normalize, bias, ties;
  double capacity_factor;
};

void run_case(const Case& c, unsigned seed) {
  const ExpertLayout layout = ExpertLayout::regular(c.ranks, c.experts_per_rank, c.ranks_per_node);
  const int n = layout.num_experts();
  const int64_t s = c.tokens;
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 2.0f);
  MatrixRf z(s, n);
  for (int i = 0; i < z.size(); ++i) z.data()[i] = d(rng);
  if (c.ties) z = (z.array() * 2.0f).round() / 2.0f;  // many exact ties
  Eigen::VectorXf bias;
  if (c.bias) {
    bias.resize(n);
    for (int e = 0; e < n; ++e) bias[e] = 0.3f * d(rng);
  }
  GateOptions o;
  o.k = c.k;
  o.score = c.score;
  o.max_nodes = c.max_nodes;
  o.overflow = c.overflow;
  o.normalize = c.normalize;
  o.capacity_factor = c.capacity_factor;

  // Stage 1: top-k.
  const TopK host = select_topk(z, bias, layout, o);
  K::GateParams p = K::GateParams::regular(s, n, c.k, c.experts_per_rank);
  p.score = c.score == ScoreFn::softmax ? K::kGateSoftmax : K::kGateSigmoid;
  Dev<int> node_of_rank(layout.node_of_rank.data(), layout.node_of_rank.size());
  p.node_of_rank = node_of_rank.p;
  p.nodes = layout.num_nodes();
  p.max_nodes = c.max_nodes;
  p.node_score_top = o.node_score_top;
  Dev<float> dz(z.data(), z.size());
  Dev<float> dbias(bias.data(), bias.size());
  Dev<int32_t> ids(s * c.k), count(n), ids2(s * c.k);
  Dev<float> scores(s * c.k), lse(s), scores2(s * c.k);
  Dev<unsigned long long> bad(1);
  CUDA_OK(cudaMemset(count.p, 0, sizeof(int32_t) * n));
  const float* bias_ptr = c.bias ? dbias.p : nullptr;
  CUDA_OK(K::gate_topk(p, dz.p, bias_ptr, ids.p, scores.p, lse.p, count.p, bad.p, 0));
  CUDA_OK(K::gate_topk(p, dz.p, bias_ptr, ids2.p, scores2.p, nullptr, nullptr, nullptr, 0));
  CUDA_OK(cudaDeviceSynchronize());
  const auto hid = ids.get();
  const auto hsc = scores.get();
  CHECK(bad.get()[0] == ~0ull);
  CHECK(hid == ids2.get());  // deterministic
  CHECK(hsc == scores2.get());
  int id_mismatch = 0, score_mismatch = 0;
  for (int64_t i = 0; i < s * c.k; ++i) {
    id_mismatch += hid[i] != host.expert.data()[i];
    score_mismatch += !close(hsc[i], host.score.data()[i], 1e-5, 1e-30);
  }
  CHECK(id_mismatch == 0);
  CHECK(score_mismatch == 0);
  const auto hcount = count.get();
  for (int e = 0; e < n; ++e) CHECK(hcount[e] == host.expert_count[e]);
  const auto hlse = lse.get();
  int lse_mismatch = 0;
  for (int64_t t = 0; t < s; ++t) {
    double mx = -INFINITY, sum = 0;
    for (int e = 0; e < n; ++e) mx = std::max(mx, double(z(t, e)));
    for (int e = 0; e < n; ++e) sum += std::exp(z(t, e) - mx);
    lse_mismatch += !close(hlse[t], mx + std::log(sum), 1e-5, 1e-6);
  }
  CHECK(lse_mismatch == 0);

  // Stage 2: capacity on the device's own selection, host on the same (device) scores.
  TopK same = host;
  for (int64_t i = 0; i < s * c.k; ++i) same.score.data()[i] = hsc[i];
  const Routing hr = apply_capacity(same, z, bias, layout, o);
  const auto cap = effective_capacity(o, s, c.ranks);
  Dev<int64_t> dcap(cap.data(), cap.size());
  K::CapacityParams cp;
  cp.overflow = c.overflow == Overflow::drop_lowest ? K::kGateDropLowest
                : c.overflow == Overflow::reroute   ? K::kGateReroute
                                                    : K::kGateDropless;
  cp.normalize = c.normalize;
  cp.capacity = dcap.p;
  Dev<char> ws(K::gate_capacity_workspace_bytes(p));
  Dev<int32_t> out_ids(s * c.k), ecount(n), rcount(c.ranks), rerouted(1);
  Dev<float> weights(s * c.k);
  Dev<uint8_t> dropped(s * c.k);
  CUDA_OK(K::gate_capacity(p, cp, dz.p, bias_ptr, ids.p, scores.p, out_ids.p, weights.p, dropped.p,
                           rerouted.p, ws.p, ws.n, 0));
  CUDA_OK(cudaMemset(ecount.p, 0, sizeof(int32_t) * n));
  CUDA_OK(cudaMemset(rcount.p, 0, sizeof(int32_t) * c.ranks));
  CUDA_OK(K::gate_count(out_ids.p, s * c.k, n, c.experts_per_rank, ecount.p, rcount.p, 0));
  CUDA_OK(cudaDeviceSynchronize());
  const auto oid = out_ids.get();
  const auto ow = weights.get();
  const auto od = dropped.get();
  int cap_id = 0, cap_drop = 0, cap_w = 0;
  for (int64_t i = 0; i < s * c.k; ++i) {
    cap_id += oid[i] != hr.expert.data()[i];
    cap_drop += od[i] != hr.dropped.data()[i];
    cap_w += !close(ow[i], hr.weight.data()[i], 1e-5, 1e-30);
  }
  CHECK(cap_id == 0);
  CHECK(cap_drop == 0);
  CHECK(cap_w == 0);
  CHECK(rerouted.get()[0] == hr.num_rerouted);
  const auto he = ecount.get();
  const auto hrk = rcount.get();
  for (int e = 0; e < n; ++e) CHECK(he[e] == hr.expert_count[e]);
  for (int r = 0; r < c.ranks; ++r) CHECK(hrk[r] == hr.rank_count[r]);

  // Losses: topology-aware (or Switch) balance loss + z-loss, value and gradient.
  const MatrixRd zd = z.cast<double>();
  const Eigen::VectorXd f = assignment_share(host.expert_count);
  Eigen::VectorXd target(n);
  for (int e = 0; e < n; ++e) target[e] = 1.0 + (e % 3);
  target /= target.sum();
  const bool topo = seed % 2 == 0;
  const double zw = 1e-3;
  const LossGrad bal = topo ? topo_loss(zd, f, target) : switch_loss(zd, f);
  const LossGrad zl = z_loss(zd);
  std::vector<float> tf(target.data(), target.data() + n);
  for (auto& v : tf) v = static_cast<float>(v);
  Dev<float> dt(tf.data(), n), w(n), loss(1), grad(s * n), lws(s);
  CUDA_OK(K::balance_weights(count.p, n, s * c.k, topo ? dt.p : nullptr, w.p, 0));
  CUDA_OK(K::aux_loss(dz.p, s, n, w.p, static_cast<float>(zw), loss.p, grad.p, lws.p, 0));
  CUDA_OK(cudaDeviceSynchronize());
  const double want = bal.value + zw * zl.value;
  CHECK(close(loss.get()[0], want, 1e-5, 0));
  const auto hg = grad.get();
  const MatrixRd g = bal.grad + zw * zl.grad;
  // Float rounding of the terms of P(t,e) * (w_e - sum P w + 2 zw lse) / S bounds the error of
  // an entry where they cancel, so that scale sets the floor of the comparison.
  Eigen::VectorXd wd = topo ? topo_weights(f, target) : switch_weights(f);
  const double wmax = s > 0 ? wd.cwiseAbs().maxCoeff() : 0.0;
  int grad_mismatch = 0;
  for (int64_t t = 0; t < s; ++t) {
    const double mx = zd.row(t).maxCoeff();
    const double sum = (zd.row(t).array() - mx).exp().sum();
    const double lse_t = mx + std::log(sum);
    for (int e = 0; e < n; ++e) {
      const double prob = std::exp(zd(t, e) - mx) / sum;
      const double scale = prob * (std::abs(wd[e]) + wmax + 2 * zw * std::abs(lse_t)) / s;
      grad_mismatch += !close(hg[t * n + e], g(t, e), 1e-5, 1e-5 * scale);
    }
  }
  CHECK(grad_mismatch == 0);
}

}  // namespace

TEST_CASE("CUDA gate equals the host gate on random inputs", "[routing][cuda]") {
  if (!have_gpu()) return;
  const std::vector<Case> cases = {
      // tokens ranks E rpn k score max_nodes overflow normalize bias ties cf
      {4096, 8, 2, 4, 2, ScoreFn::softmax, 0, Overflow::drop_lowest, false, false, false, 1.0},
      {4096, 8, 8, 2, 8, ScoreFn::softmax, 2, Overflow::drop_lowest, true, true, false, 0.9},
      {3000, 16, 4, 4, 4, ScoreFn::sigmoid, 2, Overflow::reroute, true, true, false, 1.0},
      {2500, 4, 16, 1, 6, ScoreFn::softmax, 0, Overflow::reroute, false, true, true, 0.7},
      {2048, 32, 8, 8, 8, ScoreFn::softmax, 3, Overflow::dropless, false, true, true, 1.0},
      {1000, 3, 7, 1, 21, ScoreFn::softmax, 0, Overflow::drop_lowest, false, false, true, 1.0},
      {777, 5, 5, 5, 3, ScoreFn::sigmoid, 0, Overflow::drop_lowest, false, true, false, 0.0},
      {0, 4, 4, 2, 2, ScoreFn::softmax, 0, Overflow::drop_lowest, false, false, false, 1.0},
  };
  unsigned seed = 100;
  for (const Case& c : cases) {
    INFO("tokens " << c.tokens << " experts " << c.ranks * c.experts_per_rank << " k " << c.k
                   << " overflow " << int(c.overflow) << " max_nodes " << c.max_nodes);
    run_case(c, seed++);
  }
}

// Both top-k kernels gate_topk can be forced to (the fast lane-group kernel and the general one,
// which auto picks only outside the fast kernel's range), on N from 4 to 256 (every lane-group
// width the fast kernel picks: 4, 8, 16 lanes per token, with padded chunks; k = 2 on 4 lanes takes
// the lanes' best two instead of a threshold), k from 1 to 8, token counts that leave a partial
// tile, ties (halves, -0 next to +0), bias or not, softmax and sigmoid.
// Each must equal the host; a forced path that cannot take the parameters says so
// (cudaErrorNotSupported).
TEST_CASE("each CUDA top-k path equals the host gate", "[routing][cuda]") {
  if (!have_gpu()) return;
  struct Shape {
    int tokens, n, k;
  };
  // N = 32, 64, 128, 256, 512 and 1024 fill the lanes exactly (8 x 1, 4 x 4, 8 x 4, 16 x 4, 32 x 4
  // and 32 x 8 chunks): the kernel without padding guards. N = 33-64 with k = 1-3, k = 4 and
  // k = 5-8 run the three 4-lane kernels (256-thread blocks, 128, 128 with chunk thresholds); at
  // N = 64 exactly their rows are swizzled in shared memory (odd groups), so every k is covered.
  const std::vector<Shape> shapes = {
      {1, 4, 1},     {33, 4, 4},    {100, 12, 3},   {257, 36, 5},  {1000, 64, 2},
      {999, 64, 8},  {513, 128, 6}, {2048, 128, 8}, {700, 256, 1}, {1500, 256, 8},
      {300, 252, 7}, {777, 64, 4},  {300, 48, 3},   {64, 60, 1},   {501, 44, 2},
      {640, 60, 6},  {2000, 64, 7}, {500, 32, 4},   {300, 512, 8}, {200, 1024, 3},
      {400, 52, 4},  {1000, 64, 5}, {700, 64, 6},   {600, 64, 3},  {300, 64, 1}};
  const int paths[] = {K::kGatePathLanes, K::kGatePathGeneric};
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 2.0f);
  int combos = 0;
  for (const Shape& sh : shapes)
    for (int variant = 0; variant < 4; ++variant) {
      const bool ties = variant & 1, with_bias = variant & 2;
      const ScoreFn score = (variant == 3) ? ScoreFn::sigmoid : ScoreFn::softmax;
      MatrixRf z(sh.tokens, sh.n);
      for (int i = 0; i < z.size(); ++i) z.data()[i] = d(rng);
      if (ties) {
        z = (z.array() * 2.0f).round() / 2.0f;
        for (int i = 0; i < z.size(); i += 7)
          if (z.data()[i] == 0.0f) z.data()[i] = -0.0f;
        // Every 5th row constant: more equal keys than any candidate list holds (exact fallback).
        for (int t = 0; t < sh.tokens; t += 5) z.row(t).setConstant(0.5f);
      }
      Eigen::VectorXf bias;
      if (with_bias) {
        bias.resize(sh.n);
        for (int e = 0; e < sh.n; ++e) bias[e] = ties ? 0.5f * (e % 3) : 0.3f * d(rng);
      }
      GateOptions o;
      o.k = sh.k;
      o.score = score;
      const TopK host = select_topk(z, bias, ExpertLayout::regular(sh.n / 4, 4, 1), o);
      Dev<float> dz(z.data(), z.size());
      Dev<float> dbias(bias.data(), bias.size());
      Dev<int32_t> ids(sh.tokens * sh.k), count(sh.n);
      Dev<float> scores(sh.tokens * sh.k), lse(sh.tokens);
      Dev<unsigned long long> bad(1);
      for (int path : paths) {
        INFO("tokens " << sh.tokens << " N " << sh.n << " k " << sh.k << " ties " << ties
                       << " bias " << with_bias << " sigmoid " << (score == ScoreFn::sigmoid)
                       << " path " << path);
        K::GateParams p = K::GateParams::regular(sh.tokens, sh.n, sh.k, 4);
        p.score = score == ScoreFn::softmax ? K::kGateSoftmax : K::kGateSigmoid;
        p.zero_count = true;
        p.path = path;
        const cudaError_t rc = K::gate_topk(p, dz.p, with_bias ? dbias.p : nullptr, ids.p, scores.p,
                                            lse.p, count.p, bad.p, 0);
        if (rc == cudaErrorNotSupported) {
          FAIL_CHECK("every shape here fits the lanes kernel");
          continue;
        }
        REQUIRE(rc == cudaSuccess);
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        ++combos;
        const auto hid = ids.get();
        const auto hsc = scores.get();
        const auto hcount = count.get();
        const auto hlse = lse.get();
        int id_bad = 0, score_bad = 0, count_bad = 0, lse_bad = 0;
        for (size_t i = 0; i < hid.size(); ++i) {
          id_bad += hid[i] != host.expert.data()[i];
          score_bad += !close(hsc[i], host.score.data()[i], 1e-5, 1e-30);
        }
        for (int e = 0; e < sh.n; ++e) count_bad += hcount[e] != host.expert_count[e];
        for (int t = 0; t < sh.tokens; ++t) {
          double mx = -INFINITY, sum = 0;
          for (int e = 0; e < sh.n; ++e) mx = std::max(mx, double(z(t, e)));
          for (int e = 0; e < sh.n; ++e) sum += std::exp(z(t, e) - mx);
          lse_bad += !close(hlse[t], mx + std::log(sum), 1e-5, 1e-6);
        }
        CHECK(id_bad == 0);
        CHECK(score_bad == 0);
        CHECK(count_bad == 0);
        CHECK(lse_bad == 0);
        CHECK(bad.get()[0] == ~0ull);
      }
    }
  CHECK(combos == int(shapes.size()) * 4 * 2);
  // A forced path outside its range is refused, not run.
  K::GateParams p = K::GateParams::regular(8, 512, 9, 4);  // the lanes kernel takes k <= 8
  p.path = K::kGatePathLanes;
  Dev<float> dz(8 * 512);
  Dev<int32_t> ids(8 * 9);
  Dev<float> scores(8 * 9);
  CHECK(K::gate_topk(p, dz.p, nullptr, ids.p, scores.p, nullptr, nullptr, nullptr, 0) ==
        cudaErrorNotSupported);
}

// The first non-finite logit (smallest token * N + expert) is reported by every path, and a
// later call on clean logits reports none again; k above N is refused.
TEST_CASE("each CUDA top-k path reports the first non-finite logit", "[routing][cuda]") {
  if (!have_gpu()) return;
  // N = 64 runs the 4-lane kernels (k = 2: best two, 4: top two, 8: chunk thresholds).
  for (int path : {K::kGatePathAuto, K::kGatePathLanes, K::kGatePathGeneric})
    for (int n : {32, 64, 256})
      for (int k : {2, 4, 8}) {
        INFO("path " << path << " N " << n << " k " << k);
        const int s = 100;
        std::vector<float> z(s * n, 0.25f);
        z[70 * n + n - 1] = -INFINITY;
        z[41 * n + 9] = NAN;
        z[90 * n + 3] = INFINITY;
        Dev<float> dz(z.data(), z.size());
        Dev<int32_t> ids(s * k);
        Dev<float> scores(s * k);
        Dev<unsigned long long> bad(1);
        K::GateParams p = K::GateParams::regular(s, n, k, 4);
        p.path = path;
        REQUIRE(K::gate_topk(p, dz.p, nullptr, ids.p, scores.p, nullptr, nullptr, bad.p, 0) ==
                cudaSuccess);
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bad.get()[0] == 41ull * n + 9);
        const std::vector<float> clean(s * n, 0.25f);
        REQUIRE(cudaMemcpy(dz.p, clean.data(), sizeof(float) * clean.size(),
                           cudaMemcpyHostToDevice) == cudaSuccess);
        REQUIRE(K::gate_topk(p, dz.p, nullptr, ids.p, scores.p, nullptr, nullptr, bad.p, 0) ==
                cudaSuccess);
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(bad.get()[0] == ~0ull);
        if (n == 32 && k == 2) {
          p.k = 33;  // more than the experts
          CHECK(K::gate_topk(p, dz.p, nullptr, ids.p, scores.p, nullptr, nullptr, bad.p, 0) ==
                cudaErrorInvalidValue);
        }
      }
}

// Back-to-back calls on one stream: call B ranks the scores call A has just written (the fast path
// lets the next kernel launch early, so each kernel must wait for the one before it before it
// reads or writes). B's ids and counts must equal the host gate on A's scores (token 0's scores
// doubling as B's bias), and A's counts the host gate on A's logits, every time; with and without
// the non-finite report.
TEST_CASE("a CUDA gate call reads what the kernel before it wrote", "[routing][cuda]") {
  if (!have_gpu()) return;
  const int64_t s = 65536;
  const int n = 64, k = 8, k2 = 2;
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.0f, 2.0f);
  cudaStream_t st = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess);
  Dev<int32_t> ids(s * k), count(n), ids2(s * k2), count2(k);
  Dev<float> scores(s * k), scores2(s * k2);
  Dev<unsigned long long> bad(1);
  for (int round = 0; round < 8; ++round) {
    const bool report = round / 2 % 2 == 0;
    INFO("round " << round << " non-finite report " << report);
    MatrixRf z(s, n);
    for (int i = 0; i < z.size(); ++i) z.data()[i] = d(rng);
    Dev<float> dz(z.data(), z.size());
    CUDA_OK(cudaDeviceSynchronize());  // the upload (legacy stream) before the gate's stream runs
    unsigned long long* nf = report ? bad.p : nullptr;
    K::GateParams a = K::GateParams::regular(s, n, k, 4);
    a.zero_count = true;
    a.score = round % 2 ? K::kGateSigmoid : K::kGateSoftmax;
    K::GateParams b = K::GateParams::regular(s, k, k2, 2);  // B's logits are A's S x k scores
    b.zero_count = true;
    b.score = a.score;
    // Zeros first (a memset orders normally): a B that ran early would see only ties.
    CUDA_OK(cudaMemsetAsync(scores.p, 0, sizeof(float) * s * k, st));
    CUDA_OK(cudaMemsetAsync(bad.p, 0, sizeof(unsigned long long), st));
    CUDA_OK(K::gate_topk(a, dz.p, nullptr, ids.p, scores.p, nullptr, count.p, nf, st));
    CUDA_OK(K::gate_topk(b, scores.p, scores.p, ids2.p, scores2.p, nullptr, count2.p, nf, st));
    CUDA_OK(cudaStreamSynchronize(st));
    const auto ha = scores.get();
    MatrixRf za(s, k);
    std::copy(ha.begin(), ha.end(), za.data());
    GateOptions o;
    o.k = k2;
    o.score = a.score == K::kGateSigmoid ? ScoreFn::sigmoid : ScoreFn::softmax;
    const Eigen::VectorXf bias_b = za.row(0).transpose();
    const TopK host = select_topk(za, bias_b, ExpertLayout::regular(k / 2, 2, 1), o);
    const auto hid = ids2.get();
    int id_bad = 0;
    for (size_t i = 0; i < hid.size(); ++i) id_bad += hid[i] != host.expert.data()[i];
    CHECK(id_bad == 0);
    const auto hc = count2.get();
    for (int e = 0; e < k; ++e) CHECK(hc[e] == host.expert_count[e]);
    CHECK(bad.get()[0] == (report ? ~0ull : 0ull));
    GateOptions oa;
    oa.k = k;
    oa.score = o.score;
    const TopK host_a = select_topk(z, Eigen::VectorXf(), ExpertLayout::regular(n / 4, 4, 1), oa);
    const auto hca = count.get();
    int count_bad = 0;
    for (int e = 0; e < n; ++e) count_bad += hca[e] != host_a.expert_count[e];
    CHECK(count_bad == 0);
  }
  cudaStreamDestroy(st);
}

// The counts start from zero every call: eager calls zero them inside the top-k kernel (block 0,
// then a flag per count buffer that the other blocks wait for before they add), a CUDA graph
// keeps the zeroing kernel (a replay cannot take a new flag generation). Three eager calls on each
// of two streams with their own buffers, run at once; a captured call replayed three times; an
// eager call after the graph; then more count buffers than the flag table holds (the rest fall
// back to the zeroing kernel). Any missed or late zeroing shows as counts off the host's.
TEST_CASE("CUDA gate counts start from zero every call, eager and from a graph",
          "[routing][cuda]") {
  if (!have_gpu()) return;
  const int64_t s = 20000;
  std::mt19937 rng(23);
  std::normal_distribution<float> d(0.0f, 2.0f);
  cudaStream_t st[2] = {nullptr, nullptr};
  for (auto& x : st) REQUIRE(cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking) == cudaSuccess);
  for (int n : {64, 128, 256})
    for (int k : {2, 4, 8}) {
      INFO("N " << n << " k " << k);
      MatrixRf z(s, n);
      for (int i = 0; i < z.size(); ++i) z.data()[i] = d(rng);
      GateOptions o;
      o.k = k;
      const TopK host = select_topk(z, Eigen::VectorXf(), ExpertLayout::regular(n / 4, 4, 1), o);
      Dev<float> dz(z.data(), z.size());
      Dev<int32_t> ids0(s * k), ids1(s * k), count0(n), count1(n);
      Dev<float> sc0(s * k), sc1(s * k);
      int32_t* ids[2] = {ids0.p, ids1.p};
      int32_t* count[2] = {count0.p, count1.p};
      float* sc[2] = {sc0.p, sc1.p};
      K::GateParams p = K::GateParams::regular(s, n, k, 4);
      p.zero_count = true;
      auto check_counts = [&](const Dev<int32_t>& c, const char* what) {
        INFO(what);
        const auto h = c.get();
        int bad = 0;
        for (int e = 0; e < n; ++e) bad += h[e] != host.expert_count[e];
        CHECK(bad == 0);
      };
      for (int round = 0; round < 3; ++round)
        for (int i = 0; i < 2; ++i)
          CUDA_OK(K::gate_topk(p, dz.p, nullptr, ids[i], sc[i], nullptr, count[i], nullptr, st[i]));
      CUDA_OK(cudaDeviceSynchronize());
      check_counts(count0, "eager, stream 0");
      check_counts(count1, "eager, stream 1");
      cudaGraph_t graph = nullptr;
      cudaGraphExec_t exec = nullptr;
      CUDA_OK(cudaStreamBeginCapture(st[0], cudaStreamCaptureModeThreadLocal));
      CUDA_OK(K::gate_topk(p, dz.p, nullptr, ids[0], sc[0], nullptr, count[0], nullptr, st[0]));
      CUDA_OK(cudaStreamEndCapture(st[0], &graph));
      CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
      for (int r = 0; r < 3; ++r) CUDA_OK(cudaGraphLaunch(exec, st[0]));
      CUDA_OK(cudaStreamSynchronize(st[0]));
      check_counts(count0, "graph replayed 3 times");
      CUDA_OK(K::gate_topk(p, dz.p, nullptr, ids[0], sc[0], nullptr, count[0], nullptr, st[0]));
      CUDA_OK(cudaStreamSynchronize(st[0]));
      check_counts(count0, "eager after the graph");
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      const auto hid = ids0.get();
      int id_bad = 0;
      for (size_t i = 0; i < hid.size(); ++i) id_bad += hid[i] != host.expert.data()[i];
      CHECK(id_bad == 0);
    }
  // More count buffers than flag slots (1024): every one of them still counts from zero.
  const int n = 64, k = 4, buffers = 1100;
  MatrixRf z(4096, n);
  for (int i = 0; i < z.size(); ++i) z.data()[i] = d(rng);
  GateOptions o;
  o.k = k;
  const TopK host = select_topk(z, Eigen::VectorXf(), ExpertLayout::regular(n / 4, 4, 1), o);
  Dev<float> dz(z.data(), z.size());
  Dev<int32_t> ids(z.rows() * k), counts(size_t(buffers) * n);
  Dev<float> sc(z.rows() * k);
  CUDA_OK(cudaMemset(counts.p, 0x7f, sizeof(int32_t) * buffers * n));  // garbage to zero
  K::GateParams p = K::GateParams::regular(z.rows(), n, k, 4);
  p.zero_count = true;
  for (int b = 0; b < buffers; ++b)
    CUDA_OK(K::gate_topk(p, dz.p, nullptr, ids.p, sc.p, nullptr, counts.p + size_t(b) * n, nullptr,
                         st[0]));
  CUDA_OK(cudaStreamSynchronize(st[0]));
  const auto hc = counts.get();
  int bad = 0;
  for (int b = 0; b < buffers; ++b)
    for (int e = 0; e < n; ++e) bad += hc[size_t(b) * n + e] != host.expert_count[e];
  CHECK(bad == 0);
  for (auto& x : st) cudaStreamDestroy(x);
}
