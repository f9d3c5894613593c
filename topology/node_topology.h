// One node's hardware as hwloc sees it: packages, NUMA nodes, cores, PUs, PCI GPUs and NICs with
// their locality, plus the GPU-to-GPU connectivity CUDA reports. Loaded from the live machine, an
// hwloc XML file (a topology captured elsewhere, NCCL-style) or an hwloc synthetic string; saved
// as JSON ("tamoe.node_topology" v1) or, when it came from hwloc, re-exported as hwloc XML.
//
// Lifecycle (hwloc's): load_*() / discover_node() -> query the plain fields -> export or drop.
// NodeTopology is a value; it keeps a shared reference to the hwloc topology it came from so
// export_xml() can write exactly what hwloc loaded.
#pragma once

#include <hwloc.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace tamoe::topo {

// RAII owner of an hwloc_topology_t (move-only). Every loader sets
// HWLOC_TYPE_FILTER_KEEP_IMPORTANT for I/O objects so GPUs, NICs and their bridges are kept.
class HwlocTopology {
 public:
  // Throws tamoe::Error (system) naming the input and hwloc's errno when loading fails.
  static HwlocTopology from_system();
  static HwlocTopology from_xml(const std::string& path);
  static HwlocTopology from_synthetic(const std::string& description);

  HwlocTopology(HwlocTopology&& o) noexcept : topo_(o.topo_) { o.topo_ = nullptr; }
  HwlocTopology& operator=(HwlocTopology&& o) noexcept;
  HwlocTopology(const HwlocTopology&) = delete;
  HwlocTopology& operator=(const HwlocTopology&) = delete;
  ~HwlocTopology();

  hwloc_topology_t get() const { return topo_; }
  // Writes hwloc's XML (loadable by load_node_xml, lstopo -i, HWLOC_XMLFILE).
  void export_xml(const std::string& path) const;

 private:
  explicit HwlocTopology(hwloc_topology_t t) : topo_(t) {}
  hwloc_topology_t topo_ = nullptr;
};

// A package or NUMA node. cpuset is hwloc's list format ("0-7,16-23").
struct CpuDomain {
  int index = 0;     // hwloc logical index (dense, 0..n-1)
  int os_index = 0;  // OS numbering (may have gaps)
  std::string cpuset;
  int64_t memory_bytes = 0;  // NUMA nodes only: local memory; 0 when unknown
};

// A PCI GPU or NIC.
struct PciDevice {
  std::string bus_id;  // "0000:3b:00.0", lowercase, 4-digit domain
  uint16_t vendor_id = 0, device_id = 0, class_id = 0;
  std::string name;  // hwloc's PCIDevice info or the CUDA device name; may be empty
  int package = -1;  // logical index of the package it is local to, -1 when not under one
  int numa = -1;     // logical index of its NUMA node, -1 when none or several are local
  // Bridges above it, outermost first: the host bridge as "host:0000:[17-3b]", then PCI bridges
  // by bus id. Its size is the bridge chain depth; a shared prefix means a shared PCIe path.
  std::vector<std::string> bridges;
  std::vector<std::string> os_devices;  // eth0, ib0, mlx5_0, cuda0, card1, ...
  int cuda_index = -1;                  // GPUs: CUDA device index when mapped, else -1
  int bridge_depth() const { return static_cast<int>(bridges.size()); }
};

// Connectivity from GPU i to GPU j as CUDA reports it (cudaDeviceGetP2PAttribute).
struct GpuLink {
  // "nvlink": P2P with native atomics (NVLink / NVSwitch on NVIDIA hardware; PCIe P2P has no
  // native atomics); "p2p": peer access over PCIe; "none": no peer access (or unknown).
  std::string kind = "none";
  int perf_rank = -1;  // cudaDevP2PAttrPerformanceRank, lower is faster; -1 unknown
  bool native_atomics = false;
};

struct NodeTopology {
  std::string hostname;
  std::string source;  // "live", "xml:<path>", "synthetic:<string>", or what JSON recorded
  std::vector<CpuDomain> packages;
  std::vector<CpuDomain> numa_nodes;
  int cores = 0;
  int pus = 0;
  std::vector<PciDevice> gpus;  // in hwloc (PCI bus) order
  std::vector<PciDevice> nics;
  // gpus.size() x gpus.size() when CUDA filled it, empty otherwise.
  std::vector<std::vector<GpuLink>> gpu_links;
  // The hwloc topology this came from; null after from_json().
  std::shared_ptr<const HwlocTopology> hwloc;

  int npackages() const { return static_cast<int>(packages.size()); }
  int nnuma() const { return static_cast<int>(numa_nodes.size()); }
  int ngpus() const { return static_cast<int>(gpus.size()); }
  int nnics() const { return static_cast<int>(nics.size()); }

  // JSON, format "tamoe.node_topology" version 1; from_json validates and names the bad field.
  nlohmann::json to_json() const;
  static NodeTopology from_json(const nlohmann::json& j,
                                const std::string& where = "node topology");
  // hwloc XML of the topology this was loaded from (throws unavailable after from_json).
  void export_xml(const std::string& path) const;
  // A readable multi-line summary (counts, domains, devices, nearest NICs, GPU link matrix).
  std::string describe() const;
};

// Builds a NodeTopology from a loaded hwloc topology (shared so export_xml can use it).
NodeTopology describe_hwloc(std::shared_ptr<const HwlocTopology> topo, const std::string& source);

// The live machine, unless TAMOE_TOPO_FILE (hwloc XML) or TAMOE_TOPO_SYNTHETIC is set in the
// parameter registry (setting both is an error). When built with CUDA and a device is visible,
// maps CUDA devices onto the GPUs and fills gpu_links.
NodeTopology discover_node();
NodeTopology load_node_xml(const std::string& path);
NodeTopology load_node_synthetic(const std::string& description);

// How close the NICs returned by closest_nics() are to the GPU.
enum class NicLocality { none, pci, package, node };
const char* nic_locality_name(NicLocality l) noexcept;

struct NicChoice {
  std::vector<int> nics;  // indices into NodeTopology::nics, all equally close; empty if no NIC
  NicLocality level = NicLocality::none;
  int shared_bridges = 0;  // for level pci: length of the shared bridge chain
};

// The NIC(s) closest to GPU `gpu`: the longest shared PCI bridge chain wins, then the same
// package, then any NIC of the node. Throws invalid_argument for a bad GPU index.
NicChoice closest_nics(const NodeTopology& t, int gpu);

// "0000:3B:00.0" or "00000000:3b:00.0" -> "0000:3b:00.0". Throws invalid_input for garbage.
std::string normalize_bus_id(const std::string& bus_id);

}  // namespace tamoe::topo
