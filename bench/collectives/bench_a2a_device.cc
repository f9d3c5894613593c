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
  const int P = g.size(), me = g.rank();
  std::vector<int64_t> sc(P), rc(P);
  for (int j = 0; j < P; ++j) {
    sc[j] = C.at(me, j);
    rc[j] = C.at(j, me);
  }
  auto sd = packed_displs(sc.data(), P), rd = packed_displs(rc.data(), P);
  const int64_t ns = std::max<int64_t>(1, sd[P - 1] + sc[P - 1]);
  const int64_t nr = std::max<int64_t>(1, rd[P - 1] + rc[P - 1]);
  const bool equal = std::all_of(C.c.begin(), C.c.end(), [&](int64_t v) { return v == C.c[0]; });
  std::vector<uint32_t> send(ns), recv(nr);
  DeviceBuffer dsend, drecv;
  void* ds = dsend.reserve(ns * 4);
  void* dr = drecv.reserve(nr * 4);
  cudaStream_t st = nullptr;
  TAMOE_CHECK_CUDA(cudaStreamCreate(&st));
  size_t first = out->size();
  std::vector<std::string> run_algos;
  for (const auto& a : algos) {
    if (a == "nccl_alltoall" && !equal) continue;  // equal counts only
    run_algos.push_back(a);
    Point p;
    p.pattern = pattern;
    p.algo = a;
    out->push_back(p);
  }
  int itg = 0;
  for (int rep = 0; rep < repeats; ++rep)
    for (size_t ai = 0; ai < run_algos.size(); ++ai) {
      Point& p = (*out)[first + ai];
      for (int it = 0; it < warmup + iters; ++it, ++itg) {
        for (int j = 0; j < P; ++j)
          for (int64_t k = 0; k < sc[j]; ++k) send[sd[j] + k] = word(me, j, k, itg);
        TAMOE_CHECK_CUDA(cudaMemcpy(ds, send.data(), ns * 4, cudaMemcpyHostToDevice));
        TAMOE_CHECK_CUDA(cudaMemset(dr, 0, nr * 4));
        TAMOE_CHECK_CUDA(cudaDeviceSynchronize());
        TAMOE_CHECK_MPI(MPI_Barrier(g.world()));
        double t0 = MPI_Wtime();
        if (run_algos[ai] == "nccl_alltoall")
          TAMOE_CHECK_NCCL(
              ncclAlltoAll(ds, dr, static_cast<size_t>(C.c[0]), ncclUint32, nccl->world(), st));
        else
          a2a.run_named(run_algos[ai], C, DeviceBuffers{ds, dr, 4, sd.data(), rd.data()}, st);
        TAMOE_CHECK_CUDA(cudaStreamSynchronize(st));
        double t = MPI_Wtime() - t0;
        TAMOE_CHECK_CUDA(cudaMemcpy(recv.data(), dr, nr * 4, cudaMemcpyDeviceToHost));
        int64_t wrong = 0;
        for (int i = 0; i < P; ++i)
          for (int64_t k = 0; k < rc[i]; ++k) wrong += recv[rd[i] + k] != word(i, me, k, itg);
        TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, g.world()));
        TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_INT64_T, MPI_SUM, g.world()));
        if (it >= warmup) {
          p.seconds.push_back(t);
          p.wrong += wrong;
        }
      }
    }
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
