// Fixtures of the trainer tests (tests/mpi/train_moe, tests/mpi/train_gpu): a tiny synthetic data
// set, the job's groups and expert layout at 1/2/4 ranks (2 virtual nodes from 2 ranks), the model
// configuration with a ladder plan, and a temp-file prefix shared by the job's ranks.
#pragma once

#include <mpi.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "collectives/alltoallv.h"
#include "collectives/groups.h"
#include "routing/losses.h"
#include "train/moe/trainer.h"

namespace tamoe::train::moe::fixtures {

// 4x4 "images", 3 classes given by a fixed linear rule plus noise, so the model can learn.
inline Dataset make_data(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.rows = 4;
  d.cols = 4;
  d.classes = 3;
  d.images.resize(n, 16);
  d.labels.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s[3] = {0, 0, 0};
    for (int f = 0; f < 16; ++f) {
      const float v = static_cast<float>(rng.normal());
      d.images(i, f) = v;
      s[f % 3] += v;
    }
    d.labels[static_cast<size_t>(i)] = s[0] > s[1] ? (s[0] > s[2] ? 0 : 2) : (s[1] > s[2] ? 1 : 2);
  }
  return d;
}

// MPI_COMM_WORLD as 1 node (1 rank) or 2 nodes (2 or more ranks), 2 experts per rank.
struct Job {
  int rank = 0, P = 1;
  std::vector<int> node_of;
  coll::Groups g;
  std::unique_ptr<coll::AllToAll> a2a;
  route::ExpertLayout layout;
  Job() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    const int nodes = P >= 2 ? 2 : 1;
    for (int r = 0; r < P; ++r) node_of.push_back(r * nodes / P);
    g = coll::Groups::from_nodes(MPI_COMM_WORLD, node_of);
    a2a = std::make_unique<coll::AllToAll>(g);
    layout = route::ExpertLayout::regular(P, 2, P / nodes);
  }
};

// 2 MoE layers (H 8, ffn 12, top-2, capacity factor 1) on 16 features and 3 classes.
inline ModelConfig model_config(const Job& j, AuxKind aux,
                                route::Overflow overflow = route::GateOptions{}.overflow) {
  ModelConfig mc;
  mc.in_features = 16;
  mc.classes = 3;
  mc.layers = 2;
  mc.moe.hidden = 8;
  mc.moe.ffn_hidden = 12;
  mc.moe.gate.k = 2;
  mc.moe.gate.capacity_factor = 1.0;
  mc.moe.gate.overflow = overflow;
  mc.moe.aux = aux;
  mc.moe.aux_weight = 0.05;
  // A ladder plan row: twice the weight on this rank's own node.
  std::vector<double> row(j.P);
  for (int r = 0; r < j.P; ++r) row[r] = j.node_of[r] == j.node_of[j.rank] ? 2.0 : 1.0;
  double s = 0;
  for (double v : row) s += v;
  for (double& v : row) v /= s;
  mc.moe.plan_row = row;
  mc.moe.target = route::target_from_plan(row, j.layout);
  return mc;
}

// "<temp dir>/<name><rank 0's pid>", the same on every rank (collective).
inline std::string temp_prefix(const std::string& name) {
  long id = static_cast<long>(::getpid());
  MPI_Bcast(&id, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  return (std::filesystem::temp_directory_path() / (name + std::to_string(id))).string();
}

}  // namespace tamoe::train::moe::fixtures
