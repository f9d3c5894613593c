// Node discovery from the XML fixture, synthetic strings and the live machine; bad input; JSON.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "catch_compat.h"
#include "runtime/error.h"
#include "runtime/params.h"
#include "topology/node_topology.h"

using tamoe::Error;
using tamoe::Status;
using namespace tamoe::topo;

namespace {
const std::string kFixture = tamoe::test::data_path("two_socket_4gpu_2nic.xml");

// A file under /tmp removed at scope exit.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& tag)
      : path("/tmp/tamoe_nodetopo_" + tag + "_" + std::to_string(getpid())) {}
  ~TempFile() { std::remove(path.c_str()); }
};

// Catches the tamoe::Error `fn` must throw and returns it.
template <typename Fn>
Error expect_error(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected a tamoe::Error");
  return Error(Status::internal, "unreachable");
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Sets a parameter at API level for one scope (API beats the environment), then clears it.
struct ScopedParam {
  std::string name;
  ScopedParam(std::string n, const std::string& value) : name(std::move(n)) {
    tamoe::Params::global().set(name, value, tamoe::ParamSource::api, "test");
  }
  ~ScopedParam() { tamoe::Params::global().set(name, "", tamoe::ParamSource::api, "test"); }
};
}  // namespace

TEST_CASE("the two-socket XML fixture has the right counts and devices", "[node-topology][xml]") {
  NodeTopology t = load_node_xml(kFixture);
  CHECK(t.hostname == "fixture-2s4g");
  CHECK(t.source == "xml:" + kFixture);
  REQUIRE(t.npackages() == 2);
  REQUIRE(t.nnuma() == 2);
  CHECK(t.cores == 8);
  CHECK(t.pus == 16);
  REQUIRE(t.ngpus() == 4);
  REQUIRE(t.nnics() == 2);

  CHECK(t.packages[0].cpuset == "0-7");
  CHECK(t.packages[1].cpuset == "8-15");
  CHECK(t.numa_nodes[1].os_index == 1);
  CHECK(t.numa_nodes[1].cpuset == "8-15");
  CHECK(t.numa_nodes[0].memory_bytes == 34359738368LL);

  const char* gpu_bus[] = {"0000:19:00.0", "0000:3b:00.0", "0000:88:00.0", "0000:af:00.0"};
  const int gpu_pkg[] = {0, 0, 1, 1};
  const int gpu_depth[] = {3, 2, 3, 2};  // host bridge + switch up + down port, or host + port
  for (int g = 0; g < 4; ++g) {
    INFO("GPU " << g);
    CHECK(t.gpus[g].bus_id == gpu_bus[g]);
    CHECK(t.gpus[g].vendor_id == 0x10de);
    CHECK(t.gpus[g].device_id == 0x2330);
    CHECK(t.gpus[g].class_id == 0x0302);
    CHECK(t.gpus[g].name == "GH100 [H100 SXM5 80GB]");
    CHECK(t.gpus[g].package == gpu_pkg[g]);
    CHECK(t.gpus[g].numa == gpu_pkg[g]);
    CHECK(t.gpus[g].bridge_depth() == gpu_depth[g]);
    CHECK(t.gpus[g].cuda_index == -1);
  }
  CHECK(t.gpus[0].bridges ==
        std::vector<std::string>{"host:0000:[17-1a]", "0000:17:00.0", "0000:18:00.0"});
  CHECK(t.nics[0].bus_id == "0000:1a:00.0");
  CHECK(t.nics[0].os_devices == std::vector<std::string>{"ib0", "mlx5_0"});
  CHECK(t.nics[0].package == 0);
  CHECK(t.nics[1].bus_id == "0000:89:00.0");
  CHECK(t.nics[1].os_devices == std::vector<std::string>{"ib1", "mlx5_1"});
  CHECK(t.nics[1].package == 1);
  CHECK(t.nics[1].numa == 1);
  CHECK(t.gpu_links.empty());
}

TEST_CASE("each fixture GPU finds its closest NIC", "[node-topology][locality]") {
  NodeTopology t = load_node_xml(kFixture);
  // GPU a of each socket shares a PCIe switch with the NIC; GPU b only the package.
  struct Want {
    int nic;
    NicLocality level;
    int shared;
  };
  const Want want[] = {{0, NicLocality::pci, 2},
                       {0, NicLocality::package, 0},
                       {1, NicLocality::pci, 2},
                       {1, NicLocality::package, 0}};
  for (int g = 0; g < 4; ++g) {
    INFO("GPU " << g);
    NicChoice c = closest_nics(t, g);
    CHECK(c.nics == std::vector<int>{want[g].nic});
    CHECK(c.level == want[g].level);
    CHECK(c.shared_bridges == want[g].shared);
  }
  CHECK(expect_error([&] { closest_nics(t, 4); }).status() == Status::invalid_argument);
  CHECK(expect_error([&] { closest_nics(t, -1); }).status() == Status::invalid_argument);
}

TEST_CASE("closest NICs fall back to any NIC, report ties, and handle none",
          "[node-topology][locality]") {
  NodeTopology t;
  t.packages.resize(2);
  PciDevice gpu;
  gpu.bus_id = "0000:19:00.0";
  gpu.package = 0;
  gpu.bridges = {"host:0000:[17-1a]", "0000:17:00.0"};
  t.gpus = {gpu};
  NicChoice none = closest_nics(t, 0);
  CHECK(none.nics.empty());
  CHECK(none.level == NicLocality::none);

  PciDevice far;  // other package, other host bridge
  far.package = 1;
  far.bridges = {"host:0000:[86-89]"};
  t.nics = {far, far};
  NicChoice any = closest_nics(t, 0);
  CHECK(any.nics == std::vector<int>{0, 1});
  CHECK(any.level == NicLocality::node);

  PciDevice root_complex;  // same host bridge, different switch: beats "package" and "node"
  root_complex.package = 0;
  root_complex.bridges = {"host:0000:[17-1a]", "0000:17:01.0"};
  t.nics.push_back(root_complex);
  NicChoice pci = closest_nics(t, 0);
  CHECK(pci.nics == std::vector<int>{2});
  CHECK(pci.level == NicLocality::pci);
  CHECK(pci.shared_bridges == 1);
  CHECK(std::string(nic_locality_name(pci.level)) == "pci");
}

TEST_CASE("a synthetic string gives the product counts", "[node-topology][synthetic]") {
  // hwloc reads each level as "per parent": 2 packages x 2 NUMA x 4 cores x 2 PUs.
  NodeTopology t = load_node_synthetic("pack:2 numa:2 core:4 pu:2");
  CHECK(t.npackages() == 2);
  CHECK(t.nnuma() == 4);
  CHECK(t.cores == 16);
  CHECK(t.pus == 32);
  CHECK(t.ngpus() == 0);
  CHECK(t.nnics() == 0);
  CHECK(t.packages[1].cpuset == "16-31");
  CHECK(t.numa_nodes[3].cpuset == "24-31");
  CHECK(t.source == "synthetic:pack:2 numa:2 core:4 pu:2");
}

TEST_CASE("a bad synthetic string is a clear error", "[node-topology][synthetic][bad-input]") {
  for (const std::string bad : {"pack:2 bogus:3 pu:2", "pack:x", ""}) {
    INFO("synthetic '" << bad << "'");
    Error e = expect_error([&] { load_node_synthetic(bad); });
    CHECK(e.status() == Status::system);
    CHECK(contains(e.what(), "'" + bad + "'"));
    CHECK(contains(e.what(), "expected a synthetic description"));
    CHECK(contains(e.what(), "errno"));
  }
}

TEST_CASE("a missing or garbled XML file is a clear error", "[node-topology][xml][bad-input]") {
  const std::string missing = "/nonexistent/tamoe/no_such_topology.xml";
  Error e1 = expect_error([&] { load_node_xml(missing); });
  CHECK(e1.status() == Status::system);
  CHECK(contains(e1.what(), missing));
  CHECK(contains(e1.what(), "errno"));

  TempFile garbled("garbled.xml");
  {
    std::ofstream f(garbled.path);
    f << "<?xml version=\"1.0\"?>\n<topology version=\"2.0\"><object type=\"Machine\"\n";
  }
  Error e2 = expect_error([&] { load_node_xml(garbled.path); });
  CHECK(contains(e2.what(), garbled.path));
  CHECK(contains(e2.what(), "expected a readable hwloc XML topology"));

  TempFile text("text.xml");
  {
    std::ofstream f(text.path);
    f << "this is not XML at all\n";
  }
  CHECK(contains(expect_error([&] { load_node_xml(text.path); }).what(), text.path));
}

TEST_CASE("JSON round trip keeps the topology", "[node-topology][json]") {
  NodeTopology t = load_node_xml(kFixture);
  t.gpus[2].cuda_index = 1;
  t.gpu_links.assign(4, std::vector<GpuLink>(4));
  t.gpu_links[0][1] = GpuLink{"nvlink", 0, true};
  t.gpu_links[1][0] = GpuLink{"p2p", 2, false};
  nlohmann::json j = t.to_json();
  CHECK(j["format"] == "tamoe.node_topology");
  CHECK(j["version"] == 1);
  NodeTopology r = NodeTopology::from_json(nlohmann::json::parse(j.dump(2)));
  CHECK(r.to_json() == j);
  CHECK(r.hostname == t.hostname);
  CHECK(r.npackages() == 2);
  CHECK(r.nnuma() == 2);
  CHECK(r.cores == 8);
  CHECK(r.pus == 16);
  REQUIRE(r.ngpus() == 4);
  CHECK(r.gpus[3].bridges == t.gpus[3].bridges);
  CHECK(r.gpus[2].cuda_index == 1);
  CHECK(r.nics[0].os_devices == t.nics[0].os_devices);
  CHECK(r.gpu_links[0][1].kind == "nvlink");
  CHECK(r.gpu_links[1][0].perf_rank == 2);
  for (int g = 0; g < 4; ++g) CHECK(closest_nics(r, g).nics == closest_nics(t, g).nics);
  CHECK(r.describe() == t.describe());
  // No hwloc topology behind a JSON load: exporting XML says so.
  Error e = expect_error([&] { r.export_xml("/tmp/unused.xml"); });
  CHECK(e.status() == Status::unavailable);
}

TEST_CASE("bad node topology JSON names the field", "[node-topology][json][bad-input]") {
  const nlohmann::json good = load_node_xml(kFixture).to_json();
  auto error_of = [&](auto edit) {
    nlohmann::json j = good;
    edit(j);
    return std::string(expect_error([&] { NodeTopology::from_json(j, "node.json"); }).what());
  };
  CHECK(contains(error_of([](auto& j) { j["format"] = "tamoe.cost_model"; }), "node.json.format"));
  CHECK(contains(error_of([](auto& j) { j["version"] = 2; }), "node.json.version"));
  CHECK(contains(error_of([](auto& j) { j["colour"] = "red"; }), "unknown field 'colour'"));
  CHECK(contains(error_of([](auto& j) { j.erase("pus"); }), "node.json.pus: expected a required"));
  CHECK(contains(error_of([](auto& j) { j["gpus"][1]["package"] = 5; }),
                 "node.json.gpus[1].package: expected an integer in [-1, 1]"));
  CHECK(contains(error_of([](auto& j) { j["nics"][0]["bus_id"] = "3b:zz"; }),
                 "node.json.nics[0].bus_id"));
  CHECK(contains(error_of([](auto& j) {
                   j["gpu_links"] = {{{{"kind", "none"}}}};
                 }),
                 "node.json.gpu_links: expected 4 rows"));
  CHECK(contains(error_of([](auto& j) {
                   j["gpu_links"] = nlohmann::json::array();
                   for (int a = 0; a < 4; ++a) {
                     nlohmann::json row = nlohmann::json::array();
                     for (int b = 0; b < 4; ++b) row.push_back({{"kind", "pcie"}});
                     j["gpu_links"].push_back(row);
                   }
                 }),
                 "node.json.gpu_links[0][0].kind"));
}

TEST_CASE("export_xml replays the same node", "[node-topology][xml]") {
  NodeTopology t = load_node_xml(kFixture);
  TempFile out("export.xml");
  t.export_xml(out.path);
  NodeTopology r = load_node_xml(out.path);
  CHECK(r.hostname == t.hostname);
  CHECK(r.npackages() == 2);
  CHECK(r.nnuma() == 2);
  CHECK(r.cores == 8);
  CHECK(r.pus == 16);
  REQUIRE(r.ngpus() == 4);
  REQUIRE(r.nnics() == 2);
  for (int g = 0; g < 4; ++g) {
    CHECK(r.gpus[g].bus_id == t.gpus[g].bus_id);
    CHECK(r.gpus[g].bridges == t.gpus[g].bridges);
    CHECK(closest_nics(r, g).nics == closest_nics(t, g).nics);
  }
  Error e = expect_error([&] { t.export_xml("/nonexistent/dir/out.xml"); });
  CHECK(contains(e.what(), "/nonexistent/dir/out.xml"));
}

TEST_CASE("describe() lists counts, devices and nearest NICs", "[node-topology]") {
  std::string d = load_node_xml(kFixture).describe();
  INFO(d);
  CHECK(contains(d, "node fixture-2s4g"));
  CHECK(contains(d, "2 packages, 2 NUMA nodes, 8 cores, 16 PUs, 4 GPUs, 2 NICs"));
  CHECK(contains(d, "GPU 1: 0000:3b:00.0 [10de:2330]"));
  CHECK(contains(d, "nearest NIC 0 (package)"));
  CHECK(contains(d, "NIC 1: 0000:89:00.0"));
  CHECK(contains(d, "ib1 mlx5_1"));
}

TEST_CASE("the live machine is discovered", "[node-topology][live]") {
  NodeTopology t = discover_node();
  INFO(t.describe());
  CHECK(t.source == "live");
  CHECK(!t.hostname.empty());
  CHECK(t.npackages() >= 1);
  CHECK(t.nnuma() >= 1);
  CHECK(t.cores >= 1);
  CHECK(t.pus >= t.cores);
  for (const auto& g : t.gpus) CHECK(g.bus_id == normalize_bus_id(g.bus_id));
  CHECK(t.to_json()["pus"] == t.pus);
}

TEST_CASE("discover_node honours TAMOE_TOPO_FILE and TAMOE_TOPO_SYNTHETIC", "[node-topology]") {
  {
    ScopedParam file("TAMOE_TOPO_FILE", kFixture);
    NodeTopology t = discover_node();
    CHECK(t.source == "xml:" + kFixture);
    CHECK(t.ngpus() == 4);
  }
  {
    ScopedParam synth("TAMOE_TOPO_SYNTHETIC", "pack:1 core:3 pu:1");
    NodeTopology t = discover_node();
    CHECK(t.cores == 3);
    CHECK(t.pus == 3);
    ScopedParam file("TAMOE_TOPO_FILE", kFixture);
    Error e = expect_error([] { discover_node(); });
    CHECK(e.status() == Status::invalid_input);
    CHECK(contains(e.what(), "at most one of them"));
  }
  CHECK(discover_node().source == "live");
}

TEST_CASE("PCI bus ids normalize to hwloc's form", "[node-topology]") {
  CHECK(normalize_bus_id("0000:3B:00.0") == "0000:3b:00.0");
  CHECK(normalize_bus_id("00000000:3b:00.0") == "0000:3b:00.0");
  CHECK(normalize_bus_id("0001:af:1f.7") == "0001:af:1f.7");
  for (const std::string bad : {"", "3b:00.0", "0000:3b:00", "0000:3b:00.0x", "0000:3b:20.0"}) {
    INFO("'" << bad << "'");
    Error e = expect_error([&] { normalize_bus_id(bad); });
    CHECK(e.status() == Status::invalid_input);
    CHECK(contains(e.what(), "'" + bad + "'"));
  }
}
