// kernels/permute.h against plain host references: every dtype, 16-byte-aligned rows (the
// vectorized kernels) and odd rows (the fallbacks), k from 1 to 9 (tails of the 4-wide load
// groups), dropped slots, null weights. Outputs are poisoned first so unwritten elements fail.
// Passes with a warning when there is no CUDA device.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "catch_compat.h"
#include "collectives/types.h"
#include "kernels/permute.h"

using namespace tamoe;

namespace {

bool have_device() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    WARN("SKIP permute kernels: no CUDA device");
    return false;
  }
  return true;
}

struct Dev {
  void* p = nullptr;
  explicit Dev(size_t bytes) { REQUIRE(cudaMalloc(&p, bytes ? bytes : 1) == cudaSuccess); }
  ~Dev() { cudaFree(p); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};
template <typename T>
void put(const Dev& d, const std::vector<T>& v) {
  REQUIRE(cudaMemcpy(d.p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
}
template <typename T>
std::vector<T> get(const Dev& d, size_t n) {
  std::vector<T> v(n);
  REQUIRE(cudaMemcpy(v.data(), d.p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return v;
}

// Host value of element i of a buffer of dtype dt.
double value(const std::vector<char>& b, int dt, int64_t i) {
  if (dt == kernels::kPermBF16) {
    uint16_t h;
    std::memcpy(&h, b.data() + 2 * i, 2);
    return coll::bf16_to_float(h);
  }
  if (dt == kernels::kPermF32) {
    float f;
    std::memcpy(&f, b.data() + 4 * i, 4);
    return f;
  }
  double d;
  std::memcpy(&d, b.data() + 8 * i, 8);
  return d;
}
void set(std::vector<char>& b, int dt, int64_t i, double v) {
  if (dt == kernels::kPermBF16) {
    uint16_t h = coll::float_to_bf16(static_cast<float>(v));
    std::memcpy(b.data() + 2 * i, &h, 2);
  } else if (dt == kernels::kPermF32) {
    float f = static_cast<float>(v);
    std::memcpy(b.data() + 4 * i, &f, 4);
  } else {
    std::memcpy(b.data() + 8 * i, &v, 8);
  }
}
int64_t esize(int dt) {
  return dt == kernels::kPermBF16 ? 2 : dt == kernels::kPermF32 ? 4 : 8;
}

// Routing with drops; slot rows from the kernel, checked against the host's stable order.
std::vector<int64_t> slot_rows(const std::vector<int32_t>& ids, int nexp, const Dev& d_rows,
                               int64_t* kept) {
  Dev d_ids(ids.size() * 4), d_cnt(nexp * 8), d_work(kernels::permute_slots_workspace_bytes(nexp));
  put(d_ids, ids);
  REQUIRE(kernels::permute_slots(d_ids.as<int32_t>(), static_cast<int64_t>(ids.size()), nexp,
                                 d_rows.as<int64_t>(), d_cnt.as<int64_t>(), d_work.p,
                                 nullptr) == cudaSuccess);
  auto rows = get<int64_t>(d_rows, ids.size());
  std::vector<int64_t> count(nexp, 0), next(nexp, 0), want(ids.size(), -1);
  for (int32_t e : ids)
    if (e >= 0) count[e]++;
  for (int e = 1; e < nexp; ++e) next[e] = next[e - 1] + count[e - 1];
  *kept = 0;
  for (size_t s = 0; s < ids.size(); ++s)
    if (ids[s] >= 0) {
      want[s] = next[ids[s]]++;
      ++*kept;
    }
  REQUIRE(rows == want);
  CHECK(get<int64_t>(d_cnt, nexp) == count);
  return rows;
}

}  // namespace

TEST_CASE("permute_rows and unpermute_combine match host references", "[permute][device]") {
  if (!have_device()) return;
  std::mt19937 rng(5);
  for (int dt : {kernels::kPermBF16, kernels::kPermF32, kernels::kPermF64})
    for (int64_t H : {int64_t{8}, int64_t{24}, int64_t{7}, int64_t{136}})
      for (int k : {1, 2, 3, 4, 5, 8, 9}) {
        INFO("dtype " << dt << " hidden " << H << " k " << k);
        const int nexp = 12;
        const int64_t T = 37, eb = esize(dt), rb = H * eb;
        std::vector<int32_t> ids(T * k);
        for (auto& e : ids) e = std::uniform_int_distribution<int>(-1, nexp - 1)(rng);
        Dev d_rows(ids.size() * 8);
        int64_t kept = 0;
        auto rows = slot_rows(ids, nexp, d_rows, &kept);

        std::vector<char> x(T * rb);
        std::uniform_real_distribution<double> u(-2, 2);
        for (int64_t i = 0; i < T * H; ++i) set(x, dt, i, u(rng));
        Dev d_x(x.size()), d_send(kept * rb);
        put(d_x, x);
        REQUIRE(cudaMemset(d_send.p, 0xff, kept * rb) == cudaSuccess);
        REQUIRE(kernels::permute_rows(d_x.p, d_rows.as<int64_t>(), T, k, rb, d_send.p, nullptr) ==
                cudaSuccess);
        auto send = get<char>(d_send, kept * rb);
        std::vector<char> want(kept * rb, 0);
        for (int64_t s = 0; s < T * k; ++s)
          if (rows[s] >= 0) std::memcpy(&want[rows[s] * rb], &x[(s / k) * rb], rb);
        CHECK(send == want);

        // Expert outputs: any values in send layout; weights random (and null: all ones).
        std::vector<char> y(kept * rb);
        for (int64_t i = 0; i < kept * H; ++i) set(y, dt, i, u(rng));
        std::vector<float> w(T * k);
        for (auto& v : w) v = static_cast<float>(u(rng));
        Dev d_y(y.size()), d_w(w.size() * 4), d_out(T * rb);
        put(d_y, y);
        put(d_w, w);
        for (bool weighted : {true, false}) {
          REQUIRE(cudaMemset(d_out.p, 0xff, T * rb) == cudaSuccess);
          REQUIRE(kernels::unpermute_combine(d_y.p, d_rows.as<int64_t>(),
                                             weighted ? d_w.as<float>() : nullptr, T, k, H, dt,
                                             d_out.p, nullptr) == cudaSuccess);
          auto out = get<char>(d_out, T * rb);
          int64_t bad = 0;
          for (int64_t t = 0; t < T; ++t)
            for (int64_t c = 0; c < H; ++c) {
              double ref = 0, mag = 0;
              for (int i = 0; i < k; ++i) {
                int64_t r = rows[t * k + i];
                if (r < 0) continue;
                double term = (weighted ? w[t * k + i] : 1.0) * value(y, dt, r * H + c);
                ref += term;
                mag += std::fabs(term);
              }
              const double tol = dt == kernels::kPermBF16  ? std::fabs(ref) / 256 + 1e-5 * mag
                                 : dt == kernels::kPermF32 ? 1e-6 * (std::fabs(ref) + mag)
                                                           : 1e-13 * (std::fabs(ref) + mag);
              bad += !(std::fabs(value(out, dt, t * H + c) - ref) <= tol);
            }
          CHECK(bad == 0);
        }
      }
}

TEST_CASE("copy_row_blocks moves each block to its place", "[permute][device]") {
  if (!have_device()) return;
  std::mt19937 rng(9);
  for (int64_t rb : {int64_t{16}, int64_t{14336}, int64_t{12}, int64_t{8200}}) {
    INFO("row bytes " << rb);
    const int nb = 7;
    std::vector<int64_t> count(nb), from(nb), to(nb);
    int64_t rows = 0;
    for (int b = 0; b < nb; ++b) {
      count[b] = b == 3 ? 0 : std::uniform_int_distribution<int64_t>(0, 90)(rng);
      from[b] = rows;
      rows += count[b];
    }
    for (int b = nb - 1, at = 0; b >= 0; --b) {
      to[b] = at;
      at += count[b];
    }
    std::vector<char> src(rows * rb);
    for (auto& c : src) c = static_cast<char>(rng());
    std::vector<int64_t> lists = from;
    lists.insert(lists.end(), to.begin(), to.end());
    lists.insert(lists.end(), count.begin(), count.end());
    Dev d_src(src.size()), d_dst(src.size()), d_l(lists.size() * 8);
    put(d_src, src);
    put(d_l, lists);
    REQUIRE(cudaMemset(d_dst.p, 0x5a, src.size()) == cudaSuccess);
    auto* l = d_l.as<int64_t>();
    REQUIRE(kernels::copy_row_blocks(d_src.p, d_dst.p, l, l + nb, l + 2 * nb, nb, rb, nullptr) ==
            cudaSuccess);
    std::vector<char> want(src.size());
    for (int b = 0; b < nb; ++b)
      if (count[b])
        std::memcpy(&want[to[b] * rb], &src[from[b] * rb], static_cast<size_t>(count[b] * rb));
    CHECK(get<char>(d_dst, src.size()) == want);
  }
}
