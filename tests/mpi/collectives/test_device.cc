// Device path (NCCL + CUDA permute kernels) against the host path, which the other tests check
// against serial references. Skips (passes with a warning) when any rank has no CUDA device.
#include <cuda_runtime.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "catch_compat.h"
#include "collectives/dispatch.h"
#include "collectives/dispatch_device.h"
#include "layouts.h"
#include "runtime/error.h"
#include "runtime/params.h"

using namespace tamoe::coll;

namespace {

template <typename T>
T* to_device(const std::vector<T>& v) {
  T* p = nullptr;
  cudaMalloc(&p, std::max<size_t>(1, v.size()) * sizeof(T));
  if (!v.empty()) cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return p;
}
template <typename T>
std::vector<T> to_host(const T* p, size_t n) {
  std::vector<T> v(n);
  if (n) cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
  return v;
}

// Groups + NCCL, or nullptr when the job has no devices.
std::unique_ptr<NcclGroups> try_nccl(const Groups& g) {
  try {
    return NcclGroups::create(g);
  } catch (const tamoe::Error& e) {
    if (e.status() != tamoe::Status::unavailable) throw;
    WARN("SKIP device collectives: " << e.what());
    return nullptr;
  }
}

}  // namespace

TEST_CASE("device dispatch/combine and backward equal the host path", "[coll][device]") {
  const int P = tamoe::test::world_size(), me = tamoe::test::world_rank();
  for (const auto& l : tamoe::test::test_layouts(P)) {
    Groups g = Groups::from_nodes(MPI_COMM_WORLD, l.node_of);
    auto nccl = try_nccl(g);
    if (!nccl) return;
    std::vector<std::string> algos = {"nccl"};
    if (l.uniform) algos.insert(algos.end(), {"hier", "hier_inter_first"});
    for (const auto& algo : algos) {
      INFO("layout " << l.name << " algo " << algo);
      const int E = 2, k = 2;
      const int64_t H = 8;
      std::mt19937 rng(17u + static_cast<unsigned>(me));
      int64_t tokens = std::uniform_int_distribution<int64_t>(0, 9)(rng);
      std::vector<int32_t> ids(tokens * k);
      std::vector<float> w(tokens * k);
      std::vector<double> x(tokens * H), go(tokens * H);
      std::uniform_real_distribution<double> u(-1, 1);
      for (auto& v : ids) v = std::uniform_int_distribution<int32_t>(-1, P * E - 1)(rng);
      for (auto& v : w) v = static_cast<float>(u(rng));
      for (auto& v : x) v = u(rng);
      for (auto& v : go) v = u(rng);

      AllToAll host_a2a(g, AllToAllOptions{nullptr, "mpi"});
      HostDispatch hh = HostDispatch::create(host_a2a, ids.data(), DispatchShape{tokens, k, E});
      std::vector<double> hrecv(hh.recv_rows() * H), hout(tokens * H), hgy(hh.recv_rows() * H),
          hgx(tokens * H);
      std::vector<float> hgw(tokens * k);
      hh.dispatch(x.data(), H, DType::f64, hrecv.data());
      std::vector<double> y = hrecv;
      for (auto& v : y) v = 2 * v + 1;
      hh.combine(y.data(), w.data(), H, DType::f64, hout.data());
      hh.combine_backward(go.data(), w.data(), H, DType::f64, hgy.data(), hgw.data());
      hh.dispatch_backward(hgy.data(), H, DType::f64, hgx.data());

      cudaStream_t st = nullptr;
      cudaStreamCreate(&st);
      DeviceAllToAll dev_a2a(*nccl, AllToAllOptions{nullptr, algo});
      int32_t* d_ids = to_device(ids);
      auto dh = DeviceDispatch::create(dev_a2a, d_ids, DispatchShape{tokens, k, E}, st);
      REQUIRE(dh->recv_rows() == hh.recv_rows());
      CHECK(dh->expert_counts() == hh.expert_counts());
      double *d_x = to_device(x), *d_y = to_device(y), *d_go = to_device(go);
      float* d_w = to_device(w);
      double *d_recv = to_device(std::vector<double>(hrecv.size())),
             *d_out = to_device(std::vector<double>(hout.size())),
             *d_gy = to_device(std::vector<double>(hgy.size())),
             *d_gx = to_device(std::vector<double>(hgx.size()));
      float* d_gw = to_device(std::vector<float>(hgw.size()));
      dh->dispatch(d_x, H, DType::f64, d_recv, st);
      dh->combine(d_y, d_w, H, DType::f64, d_out, st);
      dh->combine_backward(d_go, d_w, H, DType::f64, d_gy, d_gw, st);
      dh->dispatch_backward(d_gy, H, DType::f64, d_gx, st);
      cudaStreamSynchronize(st);
      CHECK(dh->last_run().algo == algo);
      CHECK(to_host(d_recv, hrecv.size()) == hrecv);
      auto near = [](const auto& a, const auto& b) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); ++i)
          if (std::abs(a[i] - b[i]) > 1e-5 * (1 + std::abs(b[i]))) return false;
        return true;
      };
      CHECK(near(to_host(d_out, hout.size()), hout));
      CHECK(near(to_host(d_gy, hgy.size()), hgy));
      CHECK(near(to_host(d_gx, hgx.size()), hgx));
      CHECK(near(to_host(d_gw, hgw.size()), hgw));
      for (void* p : std::initializer_list<void*>{d_ids, d_x, d_y, d_go, d_w, d_recv, d_out, d_gy,
                                                  d_gx, d_gw})
        cudaFree(p);
      cudaStreamDestroy(st);
    }
  }
}

TEST_CASE("device dispatch update re-plans a handle for new routing", "[coll][device]") {
  const int P = tamoe::test::world_size(), me = tamoe::test::world_rank();
  Groups g = Groups::from_nodes(MPI_COMM_WORLD, std::vector<int>(P, 0));
  auto nccl = try_nccl(g);
  if (!nccl) return;
  const int E = 3;
  const int64_t H = 12;  // 48-byte f32 rows: the vectorized kernels
  std::mt19937 rng(41u + static_cast<unsigned>(me));
  cudaStream_t st = nullptr;
  cudaStreamCreate(&st);
  DeviceAllToAll dev_a2a(*nccl, AllToAllOptions{nullptr, "nccl"});
  AllToAll host_a2a(g, AllToAllOptions{nullptr, "mpi"});
  std::unique_ptr<DeviceDispatch> dh;
  // Three routings through one handle: growing, shrinking (k changes too), empty on rank 0; each
  // both through direct (peer, expert) blocks and staged with the reorder pass.
  const int64_t tokens_of[3] = {5, 11, me == 0 ? 0 : 3};
  const int k_of[3] = {2, 3, 1};
  auto& params = tamoe::Params::global();
  const std::string direct_default = params.get_string("TAMOE_DISPATCH_DIRECT_BYTES");
  for (int pass = 0; pass < 6; ++pass) {
    const int step = pass / 2;
    const bool direct = pass % 2 == 0;
    params.set("TAMOE_DISPATCH_DIRECT_BYTES", direct ? "0" : "1099511627776",
               tamoe::ParamSource::api);
    INFO("step " << step << (direct ? " direct" : " staged"));
    const int64_t tokens = tokens_of[step];
    const int k = k_of[step];
    std::vector<int32_t> ids(tokens * k);
    std::vector<float> w(tokens * k), x(tokens * H);
    std::uniform_real_distribution<float> u(-1, 1);
    for (auto& v : ids) v = std::uniform_int_distribution<int32_t>(-1, P * E - 1)(rng);
    for (auto& v : w) v = u(rng);
    for (auto& v : x) v = u(rng);
    HostDispatch hh = HostDispatch::create(host_a2a, ids.data(), DispatchShape{tokens, k, E});
    std::vector<float> hrecv(hh.recv_rows() * H), hout(tokens * H);
    hh.dispatch(x.data(), H, DType::f32, hrecv.data());
    hh.combine(hrecv.data(), w.data(), H, DType::f32, hout.data());

    int32_t* d_ids = to_device(ids);
    if (!dh)
      dh = DeviceDispatch::create(dev_a2a, d_ids, DispatchShape{tokens, k, E}, st);
    else
      dh->update(d_ids, DispatchShape{tokens, k, E}, st);
    REQUIRE(dh->recv_rows() == hh.recv_rows());
    CHECK(dh->expert_counts() == hh.expert_counts());
    CHECK(dh->expert_offsets() == hh.expert_offsets());
    CHECK(dh->direct_blocks(H * 4) == direct);
    float *d_x = to_device(x), *d_w = to_device(w);
    float* d_recv = to_device(std::vector<float>(hrecv.size(), std::nanf("")));
    float* d_out = to_device(std::vector<float>(hout.size(), std::nanf("")));
    dh->dispatch(d_x, H, DType::f32, d_recv, st);
    dh->combine(d_recv, d_w, H, DType::f32, d_out, st);
    cudaStreamSynchronize(st);
    CHECK(to_host(d_recv, hrecv.size()) == hrecv);
    auto out = to_host(d_out, hout.size());
    int64_t bad = 0;
    for (size_t i = 0; i < out.size(); ++i)
      bad += !(std::abs(out[i] - hout[i]) <= 1e-5f * (1 + std::abs(hout[i])));
    CHECK(bad == 0);
    for (void* p : std::initializer_list<void*>{d_ids, d_x, d_w, d_recv, d_out}) cudaFree(p);
  }
  params.set("TAMOE_DISPATCH_DIRECT_BYTES", direct_default, tamoe::ParamSource::api);
  cudaStreamDestroy(st);
}
