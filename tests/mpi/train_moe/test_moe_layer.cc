// The MoE layer's backward against central finite differences in double, at 1/2/4 ranks (2
// virtual nodes from 2 ranks on). The objective is J = sum over ranks of
// sum(y_r .* R_r) + aux_weight * aux_r, so a replicated parameter's gradient is the sum of the
// ranks' gradients and a rank's expert or input gradient is that rank's own.
#include <mpi.h>

#include <cmath>
#include <functional>
#include <vector>

#include "catch_compat.h"
#include "collectives/alltoallv.h"
#include "collectives/groups.h"
#include "train/moe/moe_layer.h"

using namespace tamoe;
using train::MatrixRd;
using train::moe::AuxKind;
using train::moe::MoeConfig;
using train::moe::MoeLayer;

namespace {

struct Case {
  AuxKind aux = AuxKind::switch_loss;
  route::Overflow overflow = route::Overflow::dropless;
  double capacity_factor = 1.0;
  int max_nodes = 0;
  bool bias = false;
  bool skewed_target = false;
};

double allsum(double v) {
  double s = 0;
  MPI_Allreduce(&v, &s, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return s;
}

// Checks every gradient entry of `p` (rank `owner` only, or all ranks together when owner < 0);
// returns the worst relative error over all ranks.
double check_entries(const std::function<double()>& objective, MatrixRd& value,
                     const MatrixRd& grad, int owner, int rank) {
  const double eps = 1e-6;
  double worst = 0;
  int64_t n = value.size();
  int64_t n_max = 0;
  MPI_Allreduce(&n, &n_max, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  for (int64_t i = 0; i < n_max; ++i) {
    const bool mine = (owner < 0 || owner == rank) && i < n;
    const double saved = mine ? value.data()[i] : 0;
    if (mine) value.data()[i] = saved + eps;
    const double jp = objective();
    if (mine) value.data()[i] = saved - eps;
    const double jm = objective();
    if (mine) value.data()[i] = saved;
    const double fd = (jp - jm) / (2 * eps);
    double g = mine ? grad.data()[i] : 0;
    g = owner < 0 ? allsum(g) : allsum(g);  // owner >= 0: only the owner contributes
    if (owner >= 0 && owner != rank) continue;
    const double err = std::abs(fd - g) / std::max(1e-3, std::abs(fd) + std::abs(g));
    worst = std::max(worst, err);
  }
  double all = 0;
  MPI_Allreduce(&worst, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return all;
}

double run_case(const Case& c) {
  int rank = 0, P = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  const int nodes = P >= 2 ? 2 : 1;
  std::vector<int> node_of(P);
  for (int r = 0; r < P; ++r) node_of[r] = r * nodes / P;
  coll::Groups g = coll::Groups::from_nodes(MPI_COMM_WORLD, node_of);
  coll::AllToAll a2a(g);
  const int E = 2;
  route::ExpertLayout layout = route::ExpertLayout::regular(P, E, P / nodes);
  const int N = layout.num_experts();

  MoeConfig cfg;
  cfg.hidden = 4;
  cfg.ffn_hidden = 5;
  cfg.gate.k = std::min(2, N);
  cfg.gate.overflow = c.overflow;
  cfg.gate.capacity_factor = c.capacity_factor;
  cfg.gate.max_nodes = c.max_nodes;
  cfg.aux = c.aux;
  cfg.aux_weight = 0.3;
  if (c.skewed_target) {
    cfg.target.resize(N);
    for (int e = 0; e < N; ++e) cfg.target(e) = layout.rank_of(e) == rank ? 3.0 : 1.0;
    cfg.target /= cfg.target.sum();
  }
  train::Rng dense_rng(11), expert_rng(100 + rank), data_rng(1000 + rank);
  MoeLayer<double> layer(cfg, layout, a2a, dense_rng, expert_rng);
  if (c.bias) {
    Eigen::VectorXf b(N);
    for (int e = 0; e < N; ++e) b(e) = static_cast<float>(0.3 * std::sin(e + rank));
    layer.set_bias(b);
  }
  // Larger gate weights so the routing differs clearly between tokens and the softmax matters.
  layer.gate.weight.value *= 3.0;
  const int S = 6 + rank;  // uneven token counts per rank
  MatrixRd x(S, cfg.hidden), R(S, cfg.hidden);
  for (int64_t i = 0; i < x.size(); ++i) x.data()[i] = data_rng.normal();
  for (int64_t i = 0; i < R.size(); ++i) R.data()[i] = data_rng.normal();

  auto objective = [&]() {
    MatrixRd y = layer.forward(x);
    return allsum((y.array() * R.array()).sum() + cfg.aux_weight * layer.aux_loss());
  };
  // Analytic gradients.
  objective();
  for (auto& p : layer.dense_params()) p.param->grad.setZero();
  for (auto& p : layer.expert_params()) p.param->grad.setZero();
  MatrixRd dx = layer.backward(R);
  INFO("dropped " << layer.routing().num_dropped);

  double worst = 0;
  for (auto& p : layer.dense_params()) {
    MatrixRd grad = p.param->grad;
    const double e = check_entries(objective, p.param->value, grad, -1, rank);
    INFO(p.name << " rel err " << e);
    CHECK(e < 1e-6);
    worst = std::max(worst, e);
  }
  for (int q = 0; q < P; ++q) {
    for (auto& p : layer.expert_params()) {
      MatrixRd grad = p.param->grad;
      const double e = check_entries(objective, p.param->value, grad, q, rank);
      INFO("rank " << q << " " << p.name << " rel err " << e);
      CHECK(e < 1e-6);
      worst = std::max(worst, e);
    }
    const double e = check_entries(objective, x, dx, q, rank);
    INFO("rank " << q << " input rel err " << e);
    CHECK(e < 1e-6);
    worst = std::max(worst, e);
  }
  return worst;
}

}  // namespace

TEST_CASE("moe layer backward: dropless, switch loss") {
  Case c;
  CHECK(run_case(c) < 1e-6);
}

TEST_CASE("moe layer backward: capacity drops, TA loss with a skewed target") {
  Case c;
  c.aux = AuxKind::ta_loss;
  c.skewed_target = true;
  c.overflow = route::Overflow::drop_lowest;
  c.capacity_factor = 0.6;
  CHECK(run_case(c) < 1e-6);
}

TEST_CASE("moe layer backward: reroute, node limit, selection bias, no aux") {
  Case c;
  c.aux = AuxKind::none;
  c.overflow = route::Overflow::reroute;
  c.capacity_factor = 0.8;
  c.max_nodes = 1;
  c.bias = true;
  CHECK(run_case(c) < 1e-6);
}

TEST_CASE("moe layer: wrong input width is refused naming the layer") {
  int P = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  coll::Groups g = coll::Groups::from_nodes(MPI_COMM_WORLD, std::vector<int>(P, 0));
  coll::AllToAll a2a(g);
  MoeConfig cfg;
  cfg.hidden = 4;
  cfg.ffn_hidden = 4;
  cfg.gate.k = 1;
  train::Rng r1(1), r2(2);
  MoeLayer<double> layer(cfg, route::ExpertLayout::regular(P, 1, P), a2a, r1, r2);
  CHECK_THROWS_WITH(layer.forward(MatrixRd::Zero(3, 5)),
                    Catch::Matchers::Contains("MoeLayer::forward"));
}
