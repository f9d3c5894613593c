// Dispatch / combine on the host against a plain serial double-precision reference, on every
// layout and algorithm, and the backward pass against central finite differences.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "catch_compat.h"
#include "collectives/dispatch.h"
#include "layouts.h"
#include "runtime/error.h"

using namespace tamoe::coll;
using tamoe::test::Layout;
using tamoe::test::test_layouts;

namespace {

// One rank's routing output and activations; every rank can regenerate every other rank's.
struct Input {
  int64_t tokens = 0;
  std::vector<int32_t> ids;
  std::vector<float> w;
  std::vector<double> x;  // [tokens][H]
};

Input make_input(int rank, int P, int E, int k, int64_t H, unsigned seed, int64_t max_tokens) {
  std::mt19937 rng(seed * 7919u + static_cast<unsigned>(rank));
  Input in;
  in.tokens = std::uniform_int_distribution<int64_t>(0, max_tokens)(rng);
  if (P > 1 && rank == 1) in.tokens = 0;  // a rank that sends nothing
  std::uniform_int_distribution<int32_t> ex(0, P * E - 1);
  std::bernoulli_distribution drop(0.2);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int64_t s = 0; s < in.tokens * k; ++s) {
    in.ids.push_back(drop(rng) ? -1 : ex(rng));
    in.w.push_back(static_cast<float>(0.25 + 0.5 * (u(rng) + 1)));
  }
  for (int64_t i = 0; i < in.tokens * H; ++i) in.x.push_back(u(rng));
  return in;
}

// The test's "expert": y = (1 + e) x + 0.5 x^2 for global expert e.
double expert_fn(double x, int e) {
  return (1 + e) * x + 0.5 * x * x;
}
double expert_grad(double x, int e) {
  return (1 + e) + x;
}

template <typename T>
std::vector<T> convert(const std::vector<double>& v, DType t) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if constexpr (sizeof(T) == 2)
      out[i] = float_to_bf16(static_cast<float>(v[i]));
    else
      out[i] = static_cast<T>(v[i]);
  }
  return out;
}
template <typename T>
double back(T v) {
  if constexpr (sizeof(T) == 2)
    return bf16_to_float(v);
  else
    return static_cast<double>(v);
}

// Applies the expert function to the expert-side rows of this rank.
template <typename T>
std::vector<T> run_experts(const HostDispatch& h, const std::vector<T>& recv, int64_t H, int me,
                           int E, int P) {
  std::vector<T> y(recv.size());
  for (int e = 0; e < E; ++e) {
    int64_t first = h.expert_offsets()[static_cast<size_t>(e) * P];
    for (int64_t r = first; r < first + h.expert_rows(e); ++r)
      for (int64_t c = 0; c < H; ++c)
        y[r * H + c] = convert<T>({expert_fn(back(recv[r * H + c]), me * E + e)}, DType::f64)[0];
  }
  return y;
}

template <typename T>
void check_round_trip(AllToAll& a2a, const Groups& g, DType dt, unsigned seed, double tol,
                      const std::string& want_algo) {
  const int P = g.size(), me = g.rank(), E = 2, k = 2;
  const int64_t H = 3;
  std::vector<Input> all;
  for (int r = 0; r < P; ++r) all.push_back(make_input(r, P, E, k, H, seed, 6));
  const Input& in = all[me];
  HostDispatch h = HostDispatch::create(a2a, in.ids.data(), DispatchShape{in.tokens, k, E});
  auto x = convert<T>(in.x, dt);
  std::vector<T> recv(h.recv_rows() * H);
  h.dispatch(x.data(), H, dt, recv.data());
  if (!want_algo.empty()) CHECK(h.last_run().algo == want_algo);
  // Layout reference: [local expert][source][slot in (token, k) order].
  std::vector<double> want;
  std::vector<int64_t> counts;
  for (int e = 0; e < E; ++e)
    for (int s = 0; s < P; ++s) {
      int64_t n = 0;
      for (int64_t slot = 0; slot < all[s].tokens * k; ++slot)
        if (all[s].ids[slot] == me * E + e) {
          ++n;
          for (int64_t c = 0; c < H; ++c) want.push_back(all[s].x[(slot / k) * H + c]);
        }
      counts.push_back(n);
    }
  CHECK(h.expert_counts() == counts);
  REQUIRE(static_cast<int64_t>(want.size()) == h.recv_rows() * H);
  int64_t wrong = 0;
  for (size_t i = 0; i < want.size(); ++i) wrong += std::abs(back(recv[i]) - want[i]) > tol;
  CHECK(wrong == 0);
  // combine(experts(dispatch(x))) against the serial reference sum_i w f(x, e).
  auto y = run_experts(h, recv, H, me, E, P);
  std::vector<T> out(in.tokens * H);
  h.combine(y.data(), in.w.data(), H, dt, out.data());
  wrong = 0;
  for (int64_t t = 0; t < in.tokens; ++t)
    for (int64_t c = 0; c < H; ++c) {
      double ref = 0;
      for (int i = 0; i < k; ++i)
        if (int e = in.ids[t * k + i]; e >= 0)
          ref += in.w[t * k + i] * expert_fn(in.x[t * H + c], e);
      wrong += std::abs(back(out[t * H + c]) - ref) > tol * (1 + std::abs(ref));
    }
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("dispatch layout and combine(dispatch(x)) match a serial reference", "[coll][dispatch]") {
  const int P = tamoe::test::world_size();
  auto layouts = test_layouts(P);
  for (size_t li = 0; li < layouts.size(); ++li) {
    const Layout& l = layouts[li];
    Groups g = Groups::from_nodes(MPI_COMM_WORLD, l.node_of);
    std::vector<std::string> algos = {"mpi", "pairwise"};
    if (l.uniform) algos.insert(algos.end(), {"hier", "hier_inter_first"});
    for (size_t ai = 0; ai < algos.size(); ++ai) {
      INFO("layout " << l.name << " algo " << algos[ai]);
      AllToAll a2a(g, AllToAllOptions{nullptr, algos[ai]});
      unsigned seed = 100 + static_cast<unsigned>(li * 10 + ai);
      check_round_trip<double>(a2a, g, DType::f64, seed, 1e-12, algos[ai]);
      if (ai == 0 || ai == 2) {
        check_round_trip<float>(a2a, g, DType::f32, seed + 1, 1e-5, algos[ai]);
        check_round_trip<uint16_t>(a2a, g, DType::bf16, seed + 2, 3e-2, algos[ai]);
      }
    }
  }
}

TEST_CASE("bad expert ids on one rank make every rank throw, naming it", "[coll][dispatch]") {
  const int P = tamoe::test::world_size(), me = tamoe::test::world_rank();
  Groups g = Groups::from_nodes(MPI_COMM_WORLD, std::vector<int>(P, 0));
  AllToAll a2a(g, AllToAllOptions{nullptr, "mpi"});
  const int bad_rank = P - 1;
  std::vector<int32_t> ids = {0, me == bad_rank ? static_cast<int32_t>(P * 2) : -1};
  try {
    HostDispatch::create(a2a, ids.data(), DispatchShape{1, 2, 2});
    FAIL("no error");
  } catch (const tamoe::Error& e) {
    std::string msg = e.what();
    if (me == bad_rank) {
      CHECK(msg.find("token 0, slot 1") != std::string::npos);
      CHECK(msg.find(tamoe::str("[0, ", 2 * P, ")")) != std::string::npos);
    } else {
      CHECK(msg.find(tamoe::str("bad input on rank ", bad_rank)) != std::string::npos);
    }
  }
  // experts_per_rank that differs across ranks is a mismatch, seen everywhere.
  if (P > 1) {
    std::vector<int32_t> none;
    CHECK_THROWS_AS(HostDispatch::create(a2a, none.data(), DispatchShape{0, 1, me == 0 ? 2 : 1}),
                    tamoe::Error);
  }
}

TEST_CASE("backward of dispatch and combine matches finite differences", "[coll][dispatch]") {
  const int P = tamoe::test::world_size();
  const int me = tamoe::test::world_rank();
  const int E = 1, k = 2;
  const int64_t H = 2;
  auto layouts = test_layouts(P);
  Groups g = Groups::from_nodes(MPI_COMM_WORLD,
                                layouts.size() > 1 ? layouts[1].node_of : layouts[0].node_of);
  AllToAll a2a(g, AllToAllOptions{nullptr, g.uniform() && g.nnodes() > 1 ? "hier" : "mpi"});
  Input in = make_input(me, P, E, k, H, 4242, 2);
  std::mt19937 rng(99u + static_cast<unsigned>(me));
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> cvec(in.tokens * H);  // L = sum <c, out>
  for (auto& v : cvec) v = u(rng);
  HostDispatch h = HostDispatch::create(a2a, in.ids.data(), DispatchShape{in.tokens, k, E});

  auto loss = [&](const std::vector<double>& x, const std::vector<float>& w) {
    std::vector<double> recv(h.recv_rows() * H), out(in.tokens * H);
    h.dispatch(x.data(), H, DType::f64, recv.data());
    auto y = run_experts(h, recv, H, me, E, P);
    h.combine(y.data(), w.data(), H, DType::f64, out.data());
    double l = 0;
    for (size_t i = 0; i < out.size(); ++i) l += cvec[i] * out[i];
    MPI_Allreduce(MPI_IN_PLACE, &l, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return std::make_pair(l, recv);
  };
  // Analytic gradients.
  auto [l0, recv] = loss(in.x, in.w);
  std::vector<double> gy(h.recv_rows() * H), gx(in.tokens * H);
  std::vector<float> gw(in.tokens * k);
  h.combine_backward(cvec.data(), in.w.data(), H, DType::f64, gy.data(), gw.data());
  for (int e = 0; e < E; ++e) {
    int64_t first = h.expert_offsets()[static_cast<size_t>(e) * P];
    for (int64_t r = first; r < first + h.expert_rows(e); ++r)
      for (int64_t c = 0; c < H; ++c) gy[r * H + c] *= expert_grad(recv[r * H + c], me * E + e);
  }
  h.dispatch_backward(gy.data(), H, DType::f64, gx.data());

  // Central differences; every rank takes part in every perturbed forward pass.
  const double eps = 1e-6;
  int64_t bad = 0, checked = 0;
  for (int q = 0; q < P; ++q) {
    int64_t nx = in.tokens * H, nw = in.tokens * k;
    int64_t counts[2] = {nx, nw};
    MPI_Bcast(counts, 2, MPI_INT64_T, q, MPI_COMM_WORLD);
    for (int64_t p = 0; p < counts[0] + counts[1]; ++p) {
      std::vector<double> xp = in.x, xm = in.x;
      std::vector<float> wp = in.w, wm = in.w;
      // Weights are float: perturb them by a representable step.
      const float weps = 1.0f / 1024;
      if (me == q) {
        if (p < nx) {
          xp[p] += eps;
          xm[p] -= eps;
        } else {
          wp[p - nx] += weps;
          wm[p - nx] -= weps;
        }
      }
      double fd =
          (loss(xp, wp).first - loss(xm, wm).first) / (p < counts[0] ? 2 * eps : 2.0 * weps);
      if (me == q) {
        double an = p < nx ? gx[p] : gw[p - nx];
        ++checked;
        if (std::abs(fd - an) > 1e-5 * (1 + std::abs(fd))) {
          ++bad;
          WARN("rank " << me << " param " << p << " fd " << fd << " analytic " << an);
        }
      }
    }
  }
  CHECK(bad == 0);
  int64_t total = checked;
  MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  CHECK(total > 0);
}
