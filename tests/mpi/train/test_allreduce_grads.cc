// Data-parallel gradient averaging against a double-precision reference computed on every rank.
#include <mpi.h>

#include <cmath>
#include <vector>

#include "catch_compat.h"
#include "runtime/error.h"
#include "train/allreduce_grads.h"
#include "train/layers.h"

using namespace tamoe::train;

namespace {

int comm_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int comm_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

// The gradient value rank r holds at flat position i: differs per rank and per position.
double grad_value(int r, int64_t i) {
  return std::sin(0.37 * static_cast<double>(i) + 1.3 * r) * (r + 1);
}

}  // namespace

TEST_CASE("allreduce_grads: every rank ends with the mean of all ranks' gradients",
          "[train][mpi]") {
  const int rank = comm_rank(), size = comm_size();
  Rng rng(3);  // same parameters everywhere, as in data parallel training
  Linear<float> a(13, 7, rng);
  LayerNorm<float> ln(7);
  Param<float> empty(0, 5);
  ParamRegistry reg;
  reg.add_layer("a", a);
  reg.add_layer("ln", ln);
  reg.add("empty", empty);
  const int64_t n = reg.numel();
  REQUIRE(n == 13 * 7 + 7 + 7 + 7);
  std::vector<float> mine(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) mine[i] = static_cast<float>(grad_value(rank, i));
  reg.unflatten_grads(mine);
  const std::vector<float> values_before = reg.flatten_values();

  allreduce_grads(reg, MPI_COMM_WORLD);

  const std::vector<float> got = reg.flatten_grads();
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    double ref = 0;
    for (int r = 0; r < size; ++r) ref += static_cast<float>(grad_value(r, i));
    ref /= size;
    worst = std::max(worst, std::abs(got[i] - ref) / std::max(1.0, std::abs(ref)));
  }
  INFO("rank " << rank << " of " << size << ": worst relative error " << worst);
  REQUIRE(worst <= 1e-6);
  REQUIRE(reg.flatten_values() == values_before);  // values are not touched
  if (size == 1) REQUIRE(got == mine);

  // Every rank holds the same result bit for bit.
  std::vector<float> root = got;
  MPI_Bcast(root.data(), static_cast<int>(n), MPI_FLOAT, 0, MPI_COMM_WORLD);
  REQUIRE(root == got);
}

TEST_CASE("allreduce_grads: a subset registry averages only its parameters", "[train][mpi]") {
  const int rank = comm_rank(), size = comm_size();
  Param<float> dense(2, 3), expert(4, 2);
  ParamRegistry all;
  all.add("dense.w", dense);
  all.add("expert.w", expert);
  dense.grad.setConstant(static_cast<float>(rank));
  expert.grad.setConstant(static_cast<float>(10 + rank));
  ParamRegistry replicated =
      all.subset([](const std::string& name) { return name.rfind("dense.", 0) == 0; });
  allreduce_grads(replicated, MPI_COMM_WORLD);
  REQUIRE(dense.grad.isConstant(static_cast<float>(size - 1) / 2.0f));
  REQUIRE(expert.grad.isConstant(static_cast<float>(10 + rank)));  // expert parallel: local
}

TEST_CASE("allreduce_grads: ranks with different sizes get an error naming the counts",
          "[train][mpi]") {
  const int rank = comm_rank(), size = comm_size();
  std::vector<float> buf(static_cast<size_t>(rank == 0 ? 5 : 6), 1.0f);
  if (size == 1) {
    allreduce_mean(buf, MPI_COMM_WORLD);
    REQUIRE(buf == std::vector<float>(5, 1.0f));
    return;
  }
  try {
    allreduce_mean(buf, MPI_COMM_WORLD);
    FAIL("no error for mismatched sizes");
  } catch (const tamoe::Error& e) {
    REQUIRE(e.status() == tamoe::Status::mismatch);
    REQUIRE(std::string(e.what()).find("between 5 and 6") != std::string::npos);
  }
}
