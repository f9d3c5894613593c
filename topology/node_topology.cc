// hwloc discovery of one node, the GPU -> NIC locality helper and the CUDA mapping.
// JSON in/out and describe() are at the end of this file.
#include "topology/node_topology.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "runtime/error.h"
#include "runtime/json_check.h"
#include "runtime/log.h"
#include "runtime/params.h"
#include "topology/cuda_devices.h"

namespace tamoe::topo {

using json_check::array;
using json_check::need;
using json_check::text;
using nlohmann::json;

namespace {

std::string errno_text(int err) {
  return str("errno ", err, " (", std::strerror(err), ")");
}

// Initializes a topology with the I/O filter every loader needs; `configure` selects the source.
template <typename Configure>
hwloc_topology_t load_topology(const std::string& where, const std::string& expected,
                               Configure configure) {
  hwloc_topology_t t = nullptr;
  if (hwloc_topology_init(&t) != 0)
    fail(Status::system, where, "hwloc_topology_init to succeed", errno_text(errno));
  // GPUs and NICs are I/O objects, which hwloc drops by default.
  hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  errno = 0;
  int rc = configure(t);
  if (rc == 0) {
    errno = 0;
    rc = hwloc_topology_load(t);
  }
  if (rc != 0) {
    int err = errno;
    hwloc_topology_destroy(t);
    fail(Status::system, where, expected,
         str("hwloc rejected it: ", err ? errno_text(err) : std::string("no errno")));
  }
  return t;
}

std::string list_string(hwloc_const_bitmap_t set) {
  if (!set) return "";
  char* s = nullptr;
  if (hwloc_bitmap_list_asprintf(&s, set) < 0 || !s) return "";
  std::string out(s);
  std::free(s);
  return out;
}

std::string pci_bus_id(unsigned domain, unsigned bus, unsigned dev, unsigned func) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%01x", domain, bus, dev, func);
  return buf;
}

bool is_gpu(const hwloc_obj_attr_u::hwloc_pcidev_attr_s& a) {
  // Display controllers (VGA 0x0300, 3D 0x0302, other 0x0380) from the accelerator vendors;
  // keeps a server's on-board VGA chip out of the GPU list.
  return (a.class_id >> 8) == 0x03 && (a.vendor_id == 0x10de || a.vendor_id == 0x1002);
}
bool is_nic(const hwloc_obj_attr_u::hwloc_pcidev_attr_s& a) {
  return (a.class_id >> 8) == 0x02;  // network controllers: Ethernet, InfiniBand, fabric, other
}

PciDevice read_pci_device(hwloc_topology_t topo, hwloc_obj_t obj) {
  const auto& a = obj->attr->pcidev;
  PciDevice d;
  d.bus_id = pci_bus_id(a.domain, a.bus, a.dev, a.func);
  d.vendor_id = a.vendor_id;
  d.device_id = a.device_id;
  d.class_id = a.class_id;
  if (const char* name = hwloc_obj_get_info_by_name(obj, "PCIDevice")) d.name = name;
  for (hwloc_obj_t p = obj->parent; p && p->type == HWLOC_OBJ_BRIDGE; p = p->parent) {
    const auto& b = p->attr->bridge;
    if (b.upstream_type == HWLOC_OBJ_BRIDGE_HOST) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "host:%04x:[%02x-%02x]", b.downstream.pci.domain,
                    b.downstream.pci.secondary_bus, b.downstream.pci.subordinate_bus);
      d.bridges.insert(d.bridges.begin(), buf);
    } else {
      const auto& u = b.upstream.pci;
      d.bridges.insert(d.bridges.begin(), pci_bus_id(u.domain, u.bus, u.dev, u.func));
    }
  }
  hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo, obj);
  // hwloc may hang a device above the package when its locality is the whole machine (VMs,
  // single-socket hosts): it is still local to the one package whose CPUs cover it.
  for (hwloc_obj_t p = nullptr;
       anc && (p = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PACKAGE, p));)
    if (anc->cpuset && p->cpuset && hwloc_bitmap_isincluded(anc->cpuset, p->cpuset)) {
      d.package = static_cast<int>(p->logical_index);
      break;
    }
  if (anc && anc->nodeset && hwloc_bitmap_weight(anc->nodeset) == 1) {
    hwloc_obj_t numa = hwloc_get_numanode_obj_by_os_index(
        topo, static_cast<unsigned>(hwloc_bitmap_first(anc->nodeset)));
    if (numa) d.numa = static_cast<int>(numa->logical_index);
  }
  for (hwloc_obj_t c = obj->io_first_child; c; c = c->next_sibling)
    if (c->type == HWLOC_OBJ_OS_DEVICE && c->name) d.os_devices.push_back(c->name);
  return d;
}

std::vector<CpuDomain> read_domains(hwloc_topology_t topo, hwloc_obj_type_t type) {
  std::vector<CpuDomain> out;
  int n = hwloc_get_nbobjs_by_type(topo, type);
  for (int i = 0; i < n; ++i) {
    hwloc_obj_t o = hwloc_get_obj_by_type(topo, type, static_cast<unsigned>(i));
    CpuDomain d;
    d.index = static_cast<int>(o->logical_index);
    d.os_index = static_cast<int>(o->os_index);
    d.cpuset = list_string(o->cpuset);
    if (type == HWLOC_OBJ_NUMANODE)
      d.memory_bytes = static_cast<int64_t>(o->attr->numanode.local_memory);
    out.push_back(d);
  }
  return out;
}

}  // namespace

// ---- HwlocTopology ----

HwlocTopology& HwlocTopology::operator=(HwlocTopology&& o) noexcept {
  if (this != &o) {
    if (topo_) hwloc_topology_destroy(topo_);
    topo_ = o.topo_;
    o.topo_ = nullptr;
  }
  return *this;
}

HwlocTopology::~HwlocTopology() {
  if (topo_) hwloc_topology_destroy(topo_);
}

HwlocTopology HwlocTopology::from_system() {
  return HwlocTopology(load_topology("hwloc discovery of this machine", "a loadable topology",
                                     [](hwloc_topology_t) { return 0; }));
}

HwlocTopology HwlocTopology::from_xml(const std::string& path) {
  return HwlocTopology(
      load_topology(str("hwloc XML file '", path, "'"), "a readable hwloc XML topology",
                    [&](hwloc_topology_t t) { return hwloc_topology_set_xml(t, path.c_str()); }));
}

HwlocTopology HwlocTopology::from_synthetic(const std::string& description) {
  return HwlocTopology(load_topology(
      str("hwloc synthetic topology '", description, "'"),
      "a synthetic description such as 'pack:2 numa:2 core:4 pu:2'",
      [&](hwloc_topology_t t) { return hwloc_topology_set_synthetic(t, description.c_str()); }));
}

void HwlocTopology::export_xml(const std::string& path) const {
  errno = 0;
  if (hwloc_topology_export_xml(topo_, path.c_str(), 0) != 0)
    fail(Status::system, str("hwloc XML export to '", path, "'"), "a writable file",
         errno_text(errno));
}

// ---- discovery ----

NodeTopology describe_hwloc(std::shared_ptr<const HwlocTopology> topo, const std::string& source) {
  hwloc_topology_t t = topo->get();
  NodeTopology n;
  n.source = source;
  if (const char* h = hwloc_obj_get_info_by_name(hwloc_get_root_obj(t), "HostName")) n.hostname = h;
  n.packages = read_domains(t, HWLOC_OBJ_PACKAGE);
  n.numa_nodes = read_domains(t, HWLOC_OBJ_NUMANODE);
  n.cores = std::max(0, hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE));
  n.pus = std::max(0, hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU));
  for (hwloc_obj_t o = hwloc_get_next_pcidev(t, nullptr); o; o = hwloc_get_next_pcidev(t, o)) {
    if (is_gpu(o->attr->pcidev)) n.gpus.push_back(read_pci_device(t, o));
    if (is_nic(o->attr->pcidev)) n.nics.push_back(read_pci_device(t, o));
  }
  n.hwloc = std::move(topo);
  return n;
}

NodeTopology load_node_xml(const std::string& path) {
  return describe_hwloc(std::make_shared<HwlocTopology>(HwlocTopology::from_xml(path)),
                        "xml:" + path);
}

NodeTopology load_node_synthetic(const std::string& description) {
  return describe_hwloc(std::make_shared<HwlocTopology>(HwlocTopology::from_synthetic(description)),
                        "synthetic:" + description);
}

NodeTopology discover_node() {
  const Params& p = Params::global();
  const std::string file = p.get_string("TAMOE_TOPO_FILE");
  const std::string synthetic = p.get_string("TAMOE_TOPO_SYNTHETIC");
  if (!file.empty() && !synthetic.empty())
    fail(Status::invalid_input, "TAMOE_TOPO_FILE / TAMOE_TOPO_SYNTHETIC", "at most one of them set",
         str("both ('", file, "' and '", synthetic, "')"));
  if (!file.empty()) return load_node_xml(file);
  if (!synthetic.empty()) return load_node_synthetic(synthetic);

  NodeTopology n =
      describe_hwloc(std::make_shared<HwlocTopology>(HwlocTopology::from_system()), "live");
  if (n.hostname.empty()) {
    char buf[256] = {0};
    if (gethostname(buf, sizeof buf - 1) == 0) n.hostname = buf;
  }
  // Only the live machine's GPUs are the ones CUDA sees; a replayed XML describes another host.
  CudaInventory inv = query_cuda_devices();
  if (inv.devices.empty()) {
    TAMOE_LOGF(info, "topo") << "no CUDA devices mapped: " << inv.why_none;
  } else {
    apply_cuda_devices(n, inv);
  }
  TAMOE_LOGF(info, "topo") << n.describe();
  return n;
}

// ---- CUDA mapping (pure bookkeeping; the CUDA calls live in cuda_devices.cc) ----

#ifndef TAMOE_HAVE_CUDA
CudaInventory query_cuda_devices() {
  CudaInventory inv;
  inv.why_none = "built without CUDA";
  return inv;
}
#endif

int apply_cuda_devices(NodeTopology& t, const CudaInventory& inv) {
  std::vector<int> gpu_of_cuda(inv.devices.size(), -1);
  int mapped = 0;
  for (size_t c = 0; c < inv.devices.size(); ++c) {
    const CudaDevice& dev = inv.devices[c];
    std::string bus = normalize_bus_id(dev.bus_id);
    if (t.hwloc) {
      // Resolve through hwloc as well, so a bus id hwloc does not know is reported as such.
      hwloc_obj_t o = hwloc_get_pcidev_by_busidstring(t.hwloc->get(), bus.c_str());
      if (!o) {
        TAMOE_LOGF(warn, "topo") << "CUDA device " << dev.index << " (" << bus
                                 << ") has no hwloc PCI object; left unmapped";
        continue;
      }
      bus = pci_bus_id(o->attr->pcidev.domain, o->attr->pcidev.bus, o->attr->pcidev.dev,
                       o->attr->pcidev.func);
    }
    for (size_t g = 0; g < t.gpus.size(); ++g)
      if (t.gpus[g].bus_id == bus) {
        t.gpus[g].cuda_index = dev.index;
        if (t.gpus[g].name.empty()) t.gpus[g].name = dev.name;
        gpu_of_cuda[c] = static_cast<int>(g);
        ++mapped;
      }
    if (gpu_of_cuda[c] < 0) {
      TAMOE_LOGF(warn, "topo") << "CUDA device " << dev.index << " (" << bus
                               << ") is not among the node's GPUs; left unmapped";
    }
  }
  if (!inv.links.empty()) {
    t.gpu_links.assign(t.gpus.size(), std::vector<GpuLink>(t.gpus.size()));
    for (size_t a = 0; a < inv.devices.size() && a < inv.links.size(); ++a)
      for (size_t b = 0; b < inv.devices.size() && b < inv.links[a].size(); ++b)
        if (gpu_of_cuda[a] >= 0 && gpu_of_cuda[b] >= 0)
          t.gpu_links[gpu_of_cuda[a]][gpu_of_cuda[b]] = inv.links[a][b];
  }
  return mapped;
}

std::string normalize_bus_id(const std::string& bus_id) {
  // hwloc and lspci print a 4-digit domain, NVML an 8-digit one; sscanf alone would accept
  // stray "0x" prefixes and signs, hence the pattern.
  static const std::regex pattern("([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\\.([0-7])");
  std::smatch m;
  unsigned long domain = 0, dev = 0;
  if (std::regex_match(bus_id, m, pattern)) {
    domain = std::stoul(m[1].str(), nullptr, 16);
    dev = std::stoul(m[3].str(), nullptr, 16);
  }
  if (m.empty() || domain > 0xffff || dev > 0x1f)
    fail(Status::invalid_input, "PCI bus id", "DOMAIN:BUS:DEV.FN such as 0000:3b:00.0",
         "'" + bus_id + "'");
  return pci_bus_id(static_cast<unsigned>(domain),
                    static_cast<unsigned>(std::stoul(m[2].str(), nullptr, 16)),
                    static_cast<unsigned>(dev), static_cast<unsigned>(std::stoul(m[4].str())));
}

// ---- locality ----

const char* nic_locality_name(NicLocality l) noexcept {
  switch (l) {
    case NicLocality::none:
      return "none";
    case NicLocality::pci:
      return "pci";
    case NicLocality::package:
      return "package";
    case NicLocality::node:
      return "node";
  }
  return "?";
}

NicChoice closest_nics(const NodeTopology& t, int gpu) {
  TAMOE_CHECK_ARG(gpu >= 0 && gpu < t.ngpus(), "closest_nics",
                  str("a GPU index in [0, ", t.ngpus(), ")"), std::to_string(gpu));
  const PciDevice& g = t.gpus[gpu];
  NicChoice best;
  // Score: shared bridges first (a shared PCIe switch beats a shared root complex), then the
  // package, so GPUDirect RDMA traffic stays off the inter-socket link.
  auto score = [&](const PciDevice& nic, int* shared) {
    size_t k = 0;
    while (k < g.bridges.size() && k < nic.bridges.size() && g.bridges[k] == nic.bridges[k]) ++k;
    *shared = static_cast<int>(k);
    if (k > 0) return std::pair{NicLocality::pci, static_cast<int>(k)};
    if (g.package >= 0 && g.package == nic.package) return std::pair{NicLocality::package, 0};
    return std::pair{NicLocality::node, 0};
  };
  auto rank = [](NicLocality l) {
    return l == NicLocality::pci ? 3 : l == NicLocality::package ? 2 : 1;
  };
  for (int i = 0; i < t.nnics(); ++i) {
    int shared = 0;
    auto [level, depth] = score(t.nics[i], &shared);
    bool better = best.nics.empty() || rank(level) > rank(best.level) ||
                  (level == best.level && depth > best.shared_bridges);
    bool equal = !best.nics.empty() && level == best.level && depth == best.shared_bridges;
    if (better) {
      best.nics = {i};
      best.level = level;
      best.shared_bridges = depth;
    } else if (equal) {
      best.nics.push_back(i);
    }
  }
  return best;
}

// ---- JSON, format "tamoe.node_topology" version 1 ----

namespace {
constexpr const char* kFormat = "tamoe.node_topology";
constexpr int kVersion = 1;

int64_t integer(const json& j, const std::string& where, int64_t lo, int64_t hi) {
  int64_t v = json_check::integer(j, where);
  if (v < lo || v > hi)
    fail(Status::invalid_input, where, str("an integer in [", lo, ", ", hi, "]"), j.dump());
  return v;
}
std::vector<std::string> strings(const json& j, const std::string& where) {
  std::vector<std::string> out;
  for (size_t i = 0; i < array(j, where)->size(); ++i)
    out.push_back(text(j[i], str(where, "[", i, "]")));
  return out;
}

json domain_json(const CpuDomain& d, bool numa) {
  json o = {{"index", d.index}, {"os_index", d.os_index}, {"cpuset", d.cpuset}};
  if (numa) o["memory_bytes"] = d.memory_bytes;
  return o;
}
CpuDomain domain_from(const json& j, const std::string& where, bool numa) {
  std::set<std::string> allowed = {"index", "os_index", "cpuset"};
  if (numa) allowed.insert("memory_bytes");
  json_check::fields(j, where, allowed);
  CpuDomain d;
  d.index = static_cast<int>(integer(need(j, "index", where), where + ".index", 0, 1 << 30));
  d.os_index =
      static_cast<int>(integer(need(j, "os_index", where), where + ".os_index", 0, 1 << 30));
  d.cpuset = text(need(j, "cpuset", where), where + ".cpuset");
  if (numa && j.contains("memory_bytes"))
    d.memory_bytes = integer(j["memory_bytes"], where + ".memory_bytes", 0, INT64_MAX);
  return d;
}

json device_json(const PciDevice& d) {
  json o = {{"bus_id", d.bus_id},
            {"vendor_id", d.vendor_id},
            {"device_id", d.device_id},
            {"class_id", d.class_id},
            {"name", d.name},
            {"package", d.package},
            {"numa", d.numa},
            {"bridges", d.bridges},
            {"os_devices", d.os_devices},
            {"cuda_index", d.cuda_index}};
  return o;
}
PciDevice device_from(const json& j, const std::string& where, int npackages, int nnuma) {
  json_check::fields(j, where,
                     {"bus_id", "vendor_id", "device_id", "class_id", "name", "package", "numa",
                      "bridges", "os_devices", "cuda_index"});
  PciDevice d;
  try {
    d.bus_id = normalize_bus_id(text(need(j, "bus_id", where), where + ".bus_id"));
  } catch (const Error& e) {
    fail(Status::invalid_input, where + ".bus_id", "a PCI bus id such as 0000:3b:00.0",
         j["bus_id"].dump());
  }
  d.vendor_id =
      static_cast<uint16_t>(integer(need(j, "vendor_id", where), where + ".vendor_id", 0, 0xffff));
  d.device_id =
      static_cast<uint16_t>(integer(need(j, "device_id", where), where + ".device_id", 0, 0xffff));
  d.class_id =
      static_cast<uint16_t>(integer(need(j, "class_id", where), where + ".class_id", 0, 0xffff));
  if (j.contains("name")) d.name = text(j["name"], where + ".name");
  d.package =
      static_cast<int>(integer(need(j, "package", where), where + ".package", -1, npackages - 1));
  d.numa = static_cast<int>(integer(need(j, "numa", where), where + ".numa", -1, nnuma - 1));
  if (j.contains("bridges")) d.bridges = strings(j["bridges"], where + ".bridges");
  if (j.contains("os_devices")) d.os_devices = strings(j["os_devices"], where + ".os_devices");
  if (j.contains("cuda_index"))
    d.cuda_index = static_cast<int>(integer(j["cuda_index"], where + ".cuda_index", -1, 1 << 20));
  return d;
}
}  // namespace

json NodeTopology::to_json() const {
  json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["hostname"] = hostname;
  j["source"] = source;
  j["cores"] = cores;
  j["pus"] = pus;
  j["packages"] = json::array();
  for (const auto& d : packages) j["packages"].push_back(domain_json(d, false));
  j["numa_nodes"] = json::array();
  for (const auto& d : numa_nodes) j["numa_nodes"].push_back(domain_json(d, true));
  j["gpus"] = json::array();
  for (const auto& d : gpus) j["gpus"].push_back(device_json(d));
  j["nics"] = json::array();
  for (const auto& d : nics) j["nics"].push_back(device_json(d));
  j["gpu_links"] = json::array();
  for (const auto& row : gpu_links) {
    json r = json::array();
    for (const auto& l : row)
      r.push_back(
          {{"kind", l.kind}, {"perf_rank", l.perf_rank}, {"native_atomics", l.native_atomics}});
    j["gpu_links"].push_back(r);
  }
  return j;
}

NodeTopology NodeTopology::from_json(const json& j, const std::string& where) {
  json_check::fields(j, where,
                     {"format", "version", "hostname", "source", "cores", "pus", "packages",
                      "numa_nodes", "gpus", "nics", "gpu_links"});
  std::string fmt = text(need(j, "format", where), where + ".format");
  if (fmt != kFormat)
    fail(Status::invalid_input, where + ".format", str("\"", kFormat, "\""), "\"" + fmt + "\"");
  integer(need(j, "version", where), where + ".version", kVersion, kVersion);
  NodeTopology n;
  n.hostname = text(need(j, "hostname", where), where + ".hostname");
  if (j.contains("source")) n.source = text(j["source"], where + ".source");
  n.cores = static_cast<int>(integer(need(j, "cores", where), where + ".cores", 0, 1 << 30));
  n.pus = static_cast<int>(integer(need(j, "pus", where), where + ".pus", 0, 1 << 30));
  const json& pk = *array(need(j, "packages", where), where + ".packages");
  for (size_t i = 0; i < pk.size(); ++i)
    n.packages.push_back(domain_from(pk[i], str(where, ".packages[", i, "]"), false));
  const json& nu = *array(need(j, "numa_nodes", where), where + ".numa_nodes");
  for (size_t i = 0; i < nu.size(); ++i)
    n.numa_nodes.push_back(domain_from(nu[i], str(where, ".numa_nodes[", i, "]"), true));
  for (const char* key : {"gpus", "nics"}) {
    const json& a = *array(need(j, key, where), where + "." + key);
    auto& out = std::string(key) == "gpus" ? n.gpus : n.nics;
    for (size_t i = 0; i < a.size(); ++i)
      out.push_back(device_from(a[i], str(where, ".", key, "[", i, "]"), n.npackages(), n.nnuma()));
  }
  if (j.contains("gpu_links")) {
    const std::string w = where + ".gpu_links";
    const json& rows = *array(j["gpu_links"], w);
    if (!rows.empty() && rows.size() != n.gpus.size())
      fail(Status::invalid_input, w, str(n.gpus.size(), " rows (one per GPU) or none"),
           str(rows.size(), " rows"));
    for (size_t a = 0; a < rows.size(); ++a) {
      const json& row = *array(rows[a], str(w, "[", a, "]"));
      if (row.size() != n.gpus.size())
        fail(Status::invalid_input, str(w, "[", a, "]"), str(n.gpus.size(), " entries"),
             str(row.size(), " entries"));
      std::vector<GpuLink> links;
      for (size_t b = 0; b < row.size(); ++b) {
        const std::string wl = str(w, "[", a, "][", b, "]");
        json_check::fields(row[b], wl, {"kind", "perf_rank", "native_atomics"});
        GpuLink l;
        l.kind = text(need(row[b], "kind", wl), wl + ".kind");
        if (l.kind != "nvlink" && l.kind != "p2p" && l.kind != "none")
          fail(Status::invalid_input, wl + ".kind", "\"nvlink\", \"p2p\" or \"none\"",
               "\"" + l.kind + "\"");
        if (row[b].contains("perf_rank"))
          l.perf_rank =
              static_cast<int>(integer(row[b]["perf_rank"], wl + ".perf_rank", -1, 1 << 20));
        if (row[b].contains("native_atomics")) {
          if (!row[b]["native_atomics"].is_boolean())
            fail(Status::invalid_input, wl + ".native_atomics", "a boolean",
                 row[b]["native_atomics"].dump());
          l.native_atomics = row[b]["native_atomics"].get<bool>();
        }
        links.push_back(l);
      }
      n.gpu_links.push_back(links);
    }
  }
  return n;
}

void NodeTopology::export_xml(const std::string& path) const {
  if (!hwloc)
    fail(Status::unavailable, str("export_xml('", path, "')"), "a topology loaded through hwloc",
         str("one read from JSON (source '", source, "')"));
  hwloc->export_xml(path);
}

// ---- describe ----

namespace {
std::string device_line(const PciDevice& d) {
  char ids[32];
  std::snprintf(ids, sizeof ids, "[%04x:%04x] class %04x", d.vendor_id, d.device_id, d.class_id);
  std::string s = str(d.bus_id, " ", ids);
  if (!d.name.empty()) s += " \"" + d.name + "\"";
  s += str(", package ", d.package, ", NUMA ", d.numa, ", ", d.bridge_depth(), " bridges");
  if (!d.os_devices.empty()) {
    s += ", os";
    for (const auto& o : d.os_devices) s += " " + o;
  }
  return s;
}
}  // namespace

std::string NodeTopology::describe() const {
  std::ostringstream os;
  os << "node " << (hostname.empty() ? "(unnamed)" : hostname) << " [" << source
     << "]: " << npackages() << " packages, " << nnuma() << " NUMA nodes, " << cores << " cores, "
     << pus << " PUs, " << ngpus() << " GPUs, " << nnics() << " NICs\n";
  for (const auto& d : packages)
    os << "  package " << d.index << " (P#" << d.os_index << "): cpus " << d.cpuset << "\n";
  for (const auto& d : numa_nodes)
    os << "  NUMA " << d.index << " (P#" << d.os_index << "): cpus " << d.cpuset << ", "
       << d.memory_bytes / (1 << 20) << " MiB\n";
  for (int g = 0; g < ngpus(); ++g) {
    os << "  GPU " << g << ": " << device_line(gpus[g]);
    if (gpus[g].cuda_index >= 0) os << ", CUDA " << gpus[g].cuda_index;
    NicChoice c = closest_nics(*this, g);
    if (!c.nics.empty()) {
      os << ", nearest NIC";
      for (int i : c.nics) os << " " << i;
      os << " (" << nic_locality_name(c.level) << ")";
    }
    os << "\n";
  }
  for (int i = 0; i < nnics(); ++i) os << "  NIC " << i << ": " << device_line(nics[i]) << "\n";
  if (!gpu_links.empty()) {
    os << "  GPU links (kind/perf rank):\n      ";
    for (int b = 0; b < ngpus(); ++b) os << " " << std::setw(10) << str("GPU", b);
    os << "\n";
    for (int a = 0; a < ngpus(); ++a) {
      os << "  GPU" << a << " ";
      for (int b = 0; b < ngpus(); ++b)
        os << " " << std::setw(10)
           << (a == b ? std::string("-")
                      : str(gpu_links[a][b].kind, "/", gpu_links[a][b].perf_rank));
      os << "\n";
    }
  }
  return os.str();
}

}  // namespace tamoe::topo
