// CUDA devices of this process and their peer connectivity, and how they map onto the PCI GPUs
// hwloc found. Debian's hwloc has no CUDA/NVML plugin, so the link between a CUDA index and an
// hwloc object is the PCI bus id (cudaDeviceGetPCIBusId -> hwloc_get_pcidev_by_busidstring).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "topology/node_topology.h"

namespace tamoe::topo {

struct CudaDevice {
  int index = 0;       // CUDA device index (after CUDA_VISIBLE_DEVICES)
  std::string bus_id;  // normalized "0000:3b:00.0"
  std::string name;    // "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int64_t memory_bytes = 0;
};

struct CudaInventory {
  std::vector<CudaDevice> devices;
  // devices.size() squared, by CUDA index; the diagonal is "none".
  std::vector<std::vector<GpuLink>> links;
  // Why devices is empty: "built without CUDA", "no CUDA device (...)"; empty when devices exist.
  std::string why_none;
};

// Lists the visible CUDA devices and their P2P attributes. No driver or no device is not an
// error: it returns an empty inventory with why_none set. Other CUDA failures throw (system).
CudaInventory query_cuda_devices();

// Sets cuda_index (and name, when hwloc had none) of each GPU whose bus id matches a CUDA device,
// and fills t.gpu_links in GPU order. CUDA devices hwloc does not list are logged and skipped.
// Returns how many CUDA devices were mapped.
int apply_cuda_devices(NodeTopology& t, const CudaInventory& inv);

}  // namespace tamoe::topo
