// Device part of tamoe-bench-a2a: NCCL flat / hierarchical all-to-all(v) and ncclAlltoAll.
#include <algorithm>

#include "bench/collectives/bench_a2a.h"
#include "runtime/error.h"

#if TAMOE_HAVE_CUDA
#include <cuda_runtime.h>

#include "collectives/device.h"
#endif

namespace tamoe::bench {

#if TAMOE_HAVE_CUDA
void run_device(const coll::Groups& g, const coll::CountMatrix& C, const std::string& pattern,
                const std::vector<std::string>& algos, int warmup, int iters, int repeats,
                std::vector<Point>* out) {
  using namespace tamoe::coll;
  static std::unique_ptr<NcclGroups> nccl;  // one set of communicators for the whole run
  if (!nccl) nccl = NcclGroups::create(g);
  DeviceAllToAll a2a(*nccl, AllToAllOptions{nullptr, "nccl"});
  const RankWords w(C, g.rank());
  const int64_t ns = w.send_words(), nr = w.recv_words();
  const bool equal = std::all_of(C.c.begin(), C.c.end(), [&](int64_t v) { return v == C.c[0]; });
  std::vector<uint32_t> send(ns), recv(nr);
  DeviceBuffer dsend, drecv;
  void* ds = dsend.reserve(ns * 4);
  void* dr = drecv.reserve(nr * 4);
  cudaStream_t st = nullptr;
  TAMOE_CHECK_CUDA(cudaStreamCreate(&st));
  std::vector<std::string> run_algos;
  for (const auto& a : algos)
    if (a != "nccl_alltoall" || equal) run_algos.push_back(a);  // nccl_alltoall: equal counts only
  auto one = [&](size_t ai, int it) {
    w.fill(send.data(), it);
    TAMOE_CHECK_CUDA(cudaMemcpy(ds, send.data(), ns * 4, cudaMemcpyHostToDevice));
    TAMOE_CHECK_CUDA(cudaMemset(dr, 0, nr * 4));
    TAMOE_CHECK_CUDA(cudaDeviceSynchronize());
    TAMOE_CHECK_MPI(MPI_Barrier(g.world()));
    double t0 = MPI_Wtime();
    if (run_algos[ai] == "nccl_alltoall")
      TAMOE_CHECK_NCCL(
          ncclAlltoAll(ds, dr, static_cast<size_t>(C.c[0]), ncclUint32, nccl->world(), st));
    else
      a2a.run_named(run_algos[ai], C, DeviceBuffers{ds, dr, 4, w.sd.data(), w.rd.data()}, st);
    TAMOE_CHECK_CUDA(cudaStreamSynchronize(st));
    double t = MPI_Wtime() - t0;
    TAMOE_CHECK_CUDA(cudaMemcpy(recv.data(), dr, nr * 4, cudaMemcpyDeviceToHost));
    return Sample{t, w.count_wrong(recv.data(), it)};
  };
  run_rounds(g, pattern, run_algos, warmup, iters, repeats, one, out);
  cudaStreamDestroy(st);
}
#else
void run_device(const coll::Groups&, const coll::CountMatrix&, const std::string&,
                const std::vector<std::string>&, int, int, int, std::vector<Point>*) {
  fail(Status::unavailable, "tamoe-bench-a2a --device", "a build with CUDA and NCCL",
       "TAMOE_HAVE_CUDA off");
}
#endif

}  // namespace tamoe::bench
