// Mapping CUDA devices onto hwloc's PCI GPUs: the bookkeeping on the fixture, and the real
// thing on a GPU machine (skipped cleanly where there is no device).
#include <set>
#include <string>

#include "catch_compat.h"
#include "runtime/error.h"
#include "topology/cuda_devices.h"
#include "topology/node_topology.h"

using namespace tamoe::topo;

TEST_CASE("CUDA devices map onto fixture GPUs by bus id", "[node-topology][cuda]") {
  NodeTopology t = load_node_xml(tamoe::test::data_path("two_socket_4gpu_2nic.xml"));
  // The form cudaDeviceGetPCIBusId prints (upper case), CUDA order differing from PCI order,
  // and one device hwloc does not know.
  CudaInventory inv;
  inv.devices = {{0, "0000:AF:00.0", "", 9, 0, 0},
                 {1, "0000:19:00.0", "", 9, 0, 0},
                 {2, "0000:5e:00.0", "", 9, 0, 0}};
  inv.links.assign(3, std::vector<GpuLink>(3));
  inv.links[0][1] = GpuLink{"nvlink", 0, true};
  inv.links[1][0] = GpuLink{"p2p", 1, false};
  inv.links[0][2] = GpuLink{"nvlink", 0, true};
  CHECK(apply_cuda_devices(t, inv) == 2);
  CHECK(t.gpus[0].cuda_index == 1);
  CHECK(t.gpus[1].cuda_index == -1);
  CHECK(t.gpus[2].cuda_index == -1);
  CHECK(t.gpus[3].cuda_index == 0);
  CHECK(t.gpus[3].name == "GH100 [H100 SXM5 80GB]");  // hwloc's name is kept
  REQUIRE(t.gpu_links.size() == 4);
  // CUDA (0 -> 1) is hwloc GPU (3 -> 0); links to the unmapped device are dropped.
  CHECK(t.gpu_links[3][0].kind == "nvlink");
  CHECK(t.gpu_links[0][3].kind == "p2p");
  CHECK(t.gpu_links[0][3].perf_rank == 1);
  CHECK(t.gpu_links[1][2].kind == "none");
  CHECK(t.describe().find("CUDA 1") != std::string::npos);
}

TEST_CASE("live CUDA devices map onto hwloc GPUs (skips without a GPU)",
          "[node-topology][cuda][device]") {
  CudaInventory inv = query_cuda_devices();
  if (inv.devices.empty()) {
    WARN("skipped: " << inv.why_none);
    CHECK(!inv.why_none.empty());
    return;
  }
  NodeTopology t = discover_node();
  INFO(t.describe());
  REQUIRE(t.ngpus() >= static_cast<int>(inv.devices.size()));
  std::set<int> seen;
  for (const CudaDevice& d : inv.devices) {
    INFO("CUDA device " << d.index << " " << d.bus_id << " " << d.name);
    int found = -1;
    for (int g = 0; g < t.ngpus(); ++g)
      if (t.gpus[g].cuda_index == d.index) found = g;
    REQUIRE(found >= 0);
    CHECK(t.gpus[found].bus_id == d.bus_id);
    CHECK(t.gpus[found].vendor_id == 0x10de);
    CHECK(seen.insert(found).second);
  }
  REQUIRE(t.gpu_links.size() == static_cast<size_t>(t.ngpus()));
  for (int a = 0; a < t.ngpus(); ++a)
    for (int b = 0; b < t.ngpus(); ++b) {
      const GpuLink& l = t.gpu_links[a][b];
      CHECK((l.kind == "nvlink" || l.kind == "p2p" || l.kind == "none"));
      if (a == b) CHECK(l.kind == "none");
      // Peer access is symmetric on NVIDIA hardware.
      CHECK(l.kind == t.gpu_links[b][a].kind);
    }
}
