#include <nlohmann/json.hpp>

#include "catch_compat.h"
#include "runtime/error.h"
#include "topology/probe.h"
#include "topology/traffic_patterns.h"

using namespace tamoe::topo;

namespace {
ProbeOptions quick() {
  ProbeOptions o;
  o.budget_s = 5;
  o.iters = 3;
  o.max_bytes = 64 << 10;
  o.concurrent_bytes = 64 << 10;
  o.max_pairs_per_class = 4;
  o.progress = false;
  return o;
}
}  // namespace

TEST_CASE("the probe measures every class and builds a valid model on all ranks", "[probe]") {
  int P = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  const int v = P >= 2 && P % 2 == 0 ? 2 : 1;
  Cluster c = Cluster::create(MPI_COMM_WORLD, ClusterOptions{v});
  ProbeResult r = run_probe(c, quick());
  CHECK(r.transport == "mpi");
  CHECK(r.copy_concurrent_bw > 0);
  if (P >= 2) {
    CHECK(!r.classes.empty());
    for (const auto& k : r.classes) {
      CHECK(k.fit.bw_bytes_per_s > 0);
      CHECK(k.points.size() >= 2);
    }
  }
  if (P >= 4) {
    CHECK(r.find("node") != nullptr);  // 2 virtual nodes x 2
    CHECK(r.find("host") != nullptr);
    CHECK(r.node_concurrent_bw > 0);
    CHECK(r.offnode_concurrent_bw > 0);
  }
  CostModel m = build_cost_model(c, r);
  CHECK(m.nranks() == P);
  CHECK(m.nnodes() == c.nnodes());
  // Every rank got the same model (the JSON text is identical everywhere).
  std::string js = m.to_json().dump();
  unsigned long h = std::hash<std::string>{}(js), hmax = h, hmin = h;
  MPI_Allreduce(&h, &hmax, 1, MPI_UNSIGNED_LONG, MPI_MAX, MPI_COMM_WORLD);
  MPI_Allreduce(&h, &hmin, 1, MPI_UNSIGNED_LONG, MPI_MIN, MPI_COMM_WORLD);
  CHECK(hmax == hmin);
  // The model predicts a positive time for a real exchange, and the measurement works.
  std::vector<double> D = traffic_pattern(m, "uniform", 4096);
  CHECK(m.predict_seconds(D) > 0);
  CHECK(measure_alltoallv(c.world(), D, 2) > 0);
}

TEST_CASE("the NCCL probe transport is unavailable without a device", "[probe][gpu]") {
  Cluster c = Cluster::create(MPI_COMM_WORLD, ClusterOptions{0});
  try {
    auto t = make_nccl_transport(c, 1024);
    WARN("a CUDA device is present: NCCL transport created (device tests run on the GPU machine)");
    CHECK(std::string(t->name()) == "nccl");
  } catch (const tamoe::Error& e) {
    CHECK(e.status() == tamoe::Status::unavailable);
  }
}

TEST_CASE("bad probe options are rejected on every rank", "[probe][bad-input]") {
  Cluster c = Cluster::create(MPI_COMM_WORLD, ClusterOptions{0});
  ProbeOptions o = quick();
  o.max_bytes = 0;
  CHECK_THROWS_AS(run_probe(c, o), tamoe::Error);
  o = quick();
  o.iters = 0;
  CHECK_THROWS_AS(run_probe(c, o), tamoe::Error);
}
