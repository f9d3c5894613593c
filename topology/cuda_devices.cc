// CUDA runtime queries for the node topology (built only with TAMOE_HAVE_CUDA).
#include "topology/cuda_devices.h"

#include <cuda_runtime_api.h>

#include "runtime/error.h"

namespace tamoe::topo {

namespace {
void check(cudaError_t rc, const std::string& call) {
  if (rc != cudaSuccess)
    fail(Status::system, "CUDA device query", str(call, " to return cudaSuccess"),
         str(cudaGetErrorName(rc), " (", cudaGetErrorString(rc), ")"));
}
}  // namespace

CudaInventory query_cuda_devices() {
  CudaInventory inv;
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    // No driver, an old driver or no device: a normal state for a host without GPUs.
    inv.why_none = str("no CUDA device (cudaGetDeviceCount: ", cudaGetErrorName(rc), ", ",
                       cudaGetErrorString(rc), ")");
    (void)cudaGetLastError();  // clear the sticky-free error so later CUDA users start clean
    return inv;
  }
  if (count == 0) {
    inv.why_none = "no CUDA device (cudaGetDeviceCount returned 0)";
    return inv;
  }
  for (int d = 0; d < count; ++d) {
    CudaDevice dev;
    dev.index = d;
    char bus[32] = {0};
    check(cudaDeviceGetPCIBusId(bus, sizeof bus, d), str("cudaDeviceGetPCIBusId(", d, ")"));
    dev.bus_id = normalize_bus_id(bus);
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, d), str("cudaGetDeviceProperties(", d, ")"));
    dev.name = prop.name;
    dev.cc_major = prop.major;
    dev.cc_minor = prop.minor;
    dev.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    inv.devices.push_back(dev);
  }
  inv.links.assign(count, std::vector<GpuLink>(count));
  for (int a = 0; a < count; ++a)
    for (int b = 0; b < count; ++b) {
      if (a == b) continue;
      int access = 0, atomics = 0, rank = -1;
      check(cudaDeviceGetP2PAttribute(&access, cudaDevP2PAttrAccessSupported, a, b),
            str("cudaDeviceGetP2PAttribute(access, ", a, ", ", b, ")"));
      check(cudaDeviceGetP2PAttribute(&atomics, cudaDevP2PAttrNativeAtomicSupported, a, b),
            str("cudaDeviceGetP2PAttribute(atomics, ", a, ", ", b, ")"));
      check(cudaDeviceGetP2PAttribute(&rank, cudaDevP2PAttrPerformanceRank, a, b),
            str("cudaDeviceGetP2PAttribute(perf rank, ", a, ", ", b, ")"));
      GpuLink& l = inv.links[a][b];
      l.native_atomics = access && atomics;
      l.perf_rank = access ? rank : -1;
      // CUDA exposes no link type; native atomics over the peer link are what NVLink adds
      // over PCIe peer access, so they stand in for "nvlink".
      l.kind = !access ? "none" : atomics ? "nvlink" : "p2p";
    }
  return inv;
}

}  // namespace tamoe::topo
