#include "bench/moe_layer/moe_run.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/moe_layer/moe_gate.h"
#include "collectives/dispatch.h"
#include "routing/losses.h"
#include "routing/stats.h"
#include "runtime/error.h"

namespace tamoe::bench::moe {

namespace {

// Elements of `got` that differ from `want` by more than tol(i).
template <typename Tol>
int64_t count_wrong(const float* got, const std::vector<double>& want, Tol tol) {
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i)
    bad += !(std::abs(static_cast<double>(got[i]) - want[i]) <= tol(i));
  return bad;
}

// Host reference of the four outputs for identity experts (y = recv): with w the kept weights,
//   out[t] = (sum_i w[t,i]) x[t],  dw[t,i] = <g[t], x[t]> (0 if dropped),  dx[t] = (sum_i w) g[t].
int64_t verify(const route::Routing& r, const route::MatrixRf& x, const route::MatrixRf& gout,
               const std::vector<float>& out, const std::vector<float>& dw,
               const std::vector<float>& dx) {
  const int64_t S = x.rows(), H = x.cols(), k = r.expert.cols();
  std::vector<double> out_ref(static_cast<size_t>(S * H)), dx_ref(out_ref.size()),
      dw_ref(static_cast<size_t>(S * k)), dw_scale(dw_ref.size());
  for (int64_t t = 0; t < S; ++t) {
    double wsum = 0, dot = 0, xn = 0, gn = 0;
    for (int64_t i = 0; i < k; ++i)
      if (r.expert(t, i) >= 0) wsum += r.weight(t, i);
    for (int64_t h = 0; h < H; ++h) {
      out_ref[t * H + h] = wsum * x(t, h);
      dx_ref[t * H + h] = wsum * gout(t, h);
      dot += static_cast<double>(x(t, h)) * gout(t, h);
      xn += static_cast<double>(x(t, h)) * x(t, h);
      gn += static_cast<double>(gout(t, h)) * gout(t, h);
    }
    for (int64_t i = 0; i < k; ++i) {
      dw_ref[t * k + i] = r.expert(t, i) >= 0 ? dot : 0;
      dw_scale[t * k + i] = std::sqrt(xn * gn);
    }
  }
  // float accumulation of at most k terms (out, dx) or H terms (dw)
  auto near = [&](const std::vector<double>& ref) {
    return [&ref](size_t i) { return 1e-5 * (1 + std::abs(ref[i])); };
  };
  return count_wrong(out.data(), out_ref, near(out_ref)) +
         count_wrong(dx.data(), dx_ref, near(dx_ref)) +
         count_wrong(dw.data(), dw_ref, [&](size_t i) { return 1e-5 * (1 + dw_scale[i]); });
}

// t_i(e) = X_{i,rank(e)} / E (routing's target_from_plan) with zero entries lifted to a small
// floor and renormalized: an LP plan is a vertex and may send nothing to a rank, but the bias
// controller (and KL) need a positive target; the floor costs at most 1e-4 of the copies.
Eigen::VectorXd plan_target(std::vector<double> row, const route::ExpertLayout& layout) {
  const double floor = 1e-4 / static_cast<double>(row.size());
  double sum = 0;
  for (double& v : row) sum += (v = std::max(v, floor));
  for (double& v : row) v /= sum;
  return route::target_from_plan(row, layout);
}

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

double predict_step(const topo::CostModel& model, const coll::Groups& g,
                    const std::vector<double>& copies, int64_t hidden, const std::string& algo) {
  const int P = g.size();
  std::vector<double> D(copies.size()), Dt(copies.size());
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) {
      double b = copies[static_cast<size_t>(i) * P + j] * static_cast<double>(hidden) * 4;
      D[static_cast<size_t>(i) * P + j] = b;
      Dt[static_cast<size_t>(j) * P + i] = b;
    }
  auto est = [&](const std::vector<double>& m) {
    return algo == "hier" ? coll::hier_estimate(model, g, m, false) : model.predict_seconds(m);
  };
  // dispatch and combine_backward move D; combine and dispatch_backward move its transpose
  return 2 * (est(D) + est(Dt));
}

std::vector<VariantResult> run_variants(const coll::Groups& g, const topo::CostModel& model,
                                        const TaPlan& plan, const BenchSetup& s,
                                        const std::vector<VariantSpec>& variants) {
  const int P = g.size(), me = g.rank(), E = s.experts_per_rank, k = s.k;
  const int64_t S = s.tokens, H = s.hidden;
  std::vector<int> node_of(P);
  for (int r = 0; r < P; ++r) node_of[r] = g.node_of(r);
  route::ExpertLayout layout{E, node_of};
  route::validate(layout);
  const int N = layout.num_experts();
  FeatureGate gate(H, N, s.seed);
  std::vector<double> row(plan.x.begin() + static_cast<ptrdiff_t>(me) * P,
                          plan.x.begin() + static_cast<ptrdiff_t>(me + 1) * P);
  const Eigen::VectorXd target_uniform = Eigen::VectorXd::Constant(N, 1.0 / N);
  const Eigen::VectorXd target_ta = plan_target(row, layout);

  route::GateOptions base;
  base.k = k;
  base.overflow = route::Overflow::drop_lowest;
  base.capacity_factor = s.capacity_factor;
  route::validate(base, layout);
  route::GateOptions plancap = base;
  plancap.capacity_per_rank = route::capacity_from_plan(row, S, k, s.capacity_factor);

  const uint64_t rank_seed = s.seed * 1000003ull + static_cast<uint64_t>(me) * 7727ull;
  BiasWarmup warm[2] = {warm_up_bias(gate, target_uniform, layout, base, S, s.bias_steps,
                                     s.bias_batches, s.bias_rate, rank_seed + 11),
                        warm_up_bias(gate, target_ta, layout, base, S, s.bias_steps, s.bias_batches,
                                     s.bias_rate, rank_seed + 13)};

  coll::AllToAll flat(g, coll::AllToAllOptions{&model, "mpi"});
  coll::AllToAll hier(g, coll::AllToAllOptions{&model, "hier"});
  const route::MatrixRf gout = gate.features(S, rank_seed + 17);  // fixed upstream gradient

  const size_t V = variants.size();
  std::vector<VariantResult> res(V);
  std::vector<std::vector<int64_t>> topk_count(V, std::vector<int64_t>(N, 0));
  std::vector<int64_t> M(static_cast<size_t>(P) * P);
  std::vector<float> recv, out(static_cast<size_t>(S * H)), grad_y, dw(static_cast<size_t>(S * k)),
      dx(out.size());
  for (size_t v = 0; v < V; ++v) {
    res[v].spec = variants[v];
    res[v].realized.assign(M.size(), 0);
  }
  for (int round = 0; round < s.rounds; ++round)
    for (size_t v = 0; v < V; ++v) {
      const VariantSpec& spec = variants[v];
      VariantResult& R = res[v];
      const int skip = round == 0 ? s.warmup : 0;
      for (int it = 0; it < skip + s.iters; ++it) {
        // The same features for every variant at a given (round, iteration).
        const uint64_t step = static_cast<uint64_t>(round) * 100000 + it - skip + 1000;
        const route::MatrixRf x = gate.features(S, rank_seed + 31 * step);
        const route::MatrixRf logits = gate.logits(x);
        const Eigen::VectorXf& bias = warm[spec.ta ? 1 : 0].bias;
        const route::GateOptions& opt = spec.plan_capacity ? plancap : base;
        route::TopK topk = route::select_topk(logits, bias, layout, opt);
        route::Routing r = route::apply_capacity(topk, logits, bias, layout, opt);
        coll::AllToAll& a2a = spec.algo == "hier" ? hier : flat;

        TAMOE_CHECK_MPI(MPI_Barrier(g.world()));
        double t[kPhases + 1];
        t[0] = MPI_Wtime();
        coll::HostDispatch h =
            coll::HostDispatch::create(a2a, r.expert.data(), coll::DispatchShape{S, k, E});
        t[1] = MPI_Wtime();
        recv.resize(static_cast<size_t>(std::max<int64_t>(1, h.recv_rows() * H)));
        grad_y.resize(recv.size());
        h.dispatch(x.data(), H, coll::DType::f32, recv.data());
        t[2] = MPI_Wtime();
        // identity experts: y = recv
        h.combine(recv.data(), r.weight.data(), H, coll::DType::f32, out.data());
        t[3] = MPI_Wtime();
        h.combine_backward(gout.data(), r.weight.data(), H, coll::DType::f32, grad_y.data(),
                           dw.data());
        t[4] = MPI_Wtime();
        h.dispatch_backward(grad_y.data(), H, coll::DType::f32, dx.data());
        t[5] = MPI_Wtime();

        double times[kPhases + 1];
        times[0] = t[kPhases] - t[0];
        for (int p = 0; p < kPhases; ++p) times[p + 1] = t[p + 1] - t[p];
        TAMOE_CHECK_MPI(
            MPI_Allreduce(MPI_IN_PLACE, times, kPhases + 1, MPI_DOUBLE, MPI_MAX, g.world()));
        int64_t counts[3] = {verify(r, x, gout, out, dw, dx), r.num_dropped,
                             static_cast<int64_t>(S) * k};
        TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, counts, 3, MPI_INT64_T, MPI_SUM, g.world()));
        TAMOE_CHECK_MPI(MPI_Allgather(r.rank_count.data(), P, MPI_INT64_T, M.data(), P, MPI_INT64_T,
                                      g.world()));
        if (it < skip) continue;
        R.algo_ran = h.last_run().algo;
        R.seconds.push_back(times[0]);
        for (int p = 0; p < kPhases; ++p) R.phase_seconds[p].push_back(times[p + 1]);
        R.wrong += counts[0];
        R.dropped += counts[1];
        R.copies += counts[2];
        std::vector<double> Md(M.begin(), M.end());
        R.predicted.push_back(predict_step(model, g, Md, H, spec.algo));
        for (int i = 0; i < P; ++i)
          for (int j = 0; j < P; ++j) {
            const int64_t c = M[static_cast<size_t>(i) * P + j];
            R.realized[static_cast<size_t>(i) * P + j] += static_cast<double>(c);
            R.kept += c;
            if (node_of[i] != node_of[j]) R.cross_node += c;
          }
        for (int e = 0; e < N; ++e) topk_count[v][e] += topk.expert_count[e];
      }
    }
  for (size_t v = 0; v < V; ++v) {
    VariantResult& R = res[v];
    for (double& c : R.realized) c /= static_cast<double>(std::max<size_t>(1, R.seconds.size()));
    const Eigen::VectorXd& target = variants[v].ta ? target_ta : target_uniform;
    double kl[3] = {route::kl_divergence(route::assignment_share(topk_count[v]), target),
                    warm[variants[v].ta ? 1 : 0].kl_before, warm[variants[v].ta ? 1 : 0].kl_after};
    TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, kl, 3, MPI_DOUBLE, MPI_SUM, g.world()));
    R.kl_to_target = kl[0] / P;
    R.bias_kl_before = kl[1] / P;
    R.bias_kl_after = kl[2] / P;
  }
  return res;
}

namespace {

const VariantResult* find(const std::vector<VariantResult>& rs, const std::string& id) {
  for (const auto& r : rs)
    if (r.spec.id == id) return &r;
  return nullptr;
}

double plan_cross_share(const TaPlan& plan, const coll::Groups& g) {
  const int P = g.size();
  double c = 0;
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j)
      if (g.node_of(i) != g.node_of(j)) c += plan.x[static_cast<size_t>(i) * P + j];
  return c / P;
}

}  // namespace

void print_report(const coll::Groups& g, const topo::CostModel& model, const TaPlan& plan,
                  const BenchSetup& s, const std::vector<VariantResult>& results, double wall_s) {
  const int P = g.size();
  const double V = static_cast<double>(s.tokens) * s.k * static_cast<double>(s.hidden) * 4;
  std::printf(
      "# tamoe-bench-moe: %s; S=%lld H=%lld k=%d E=%d cf=%.2f; V = %.2f MiB per rank "
      "and all-to-all; %d iters x %d rounds (+%d warmup); %.1f s\n",
      g.describe().c_str(), static_cast<long long>(s.tokens), static_cast<long long>(s.hidden), s.k,
      s.experts_per_rank, s.capacity_factor, V / (1 << 20), s.iters, s.rounds, s.warmup, wall_s);
  std::printf("# cost model: %s; beta (B_inter per rank / B_intra) = %.4f\n",
              model.source().c_str(), plan.beta);
  std::printf("# plan: %s, rho = %.2f, planned cross-node share %.3f (uniform %.3f); row 0:",
              plan.source.c_str(), plan.rho, plan_cross_share(plan, g),
              1.0 - static_cast<double>(g.ranks_per_node()) / P);
  for (int j = 0; j < P; ++j) std::printf(" %.4f", plan.x[j]);
  if (plan.planner_speedup > 0)
    std::printf("; planner's predicted speedup %.2f", plan.planner_speedup);
  std::printf("\n");
  for (const auto& r : results)
    if (r.spec.id == "1" || r.spec.id == "3")
      std::printf("# bias warm-up (%s target): KL(top-k share || target) %.4f -> %.5f\n",
                  r.spec.ta ? "TA" : "uniform", r.bias_kl_before, r.bias_kl_after);
  std::printf("# %-16s %-5s %9s %8s %8s %8s %8s %8s %9s %7s %7s %7s %7s %6s %7s %6s\n", "variant",
              "algo", "p50(ms)", "create", "disp", "comb", "c_bwd", "d_bwd", "pred(ms)", "err",
              "speedup", "pred_sp", "cross", "drop", "KL", "#wrong");
  const VariantResult* base = find(results, "1");
  if (!base && !results.empty()) base = &results.front();
  const double base_t = base ? median(base->seconds) : 0,
               base_p = base ? median(base->predicted) : 0;
  for (const auto& r : results) {
    double t = median(r.seconds), p = median(r.predicted);
    std::printf("  %-16s %-5s %9.2f", r.spec.name.c_str(), r.algo_ran.c_str(), t * 1e3);
    for (int ph = 0; ph < kPhases; ++ph) std::printf(" %8.2f", median(r.phase_seconds[ph]) * 1e3);
    std::printf(" %9.2f %+6.0f%% %7.2f %7.2f %7.3f %6.3f %7.4f %6lld\n", p * 1e3,
                t > 0 ? (p - t) / t * 100 : 0, t > 0 ? base_t / t : 0, p > 0 ? base_p / p : 0,
                r.kept ? static_cast<double>(r.cross_node) / static_cast<double>(r.kept) : 0,
                r.copies ? static_cast<double>(r.dropped) / static_cast<double>(r.copies) : 0,
                r.kl_to_target, static_cast<long long>(r.wrong));
  }
  for (const char* id : {"4", "5"}) {
    const VariantResult* ta = find(results, id);
    if (!ta || !base || ta == base) continue;
    double meas = base_t / median(ta->seconds), pred = base_p / median(ta->predicted);
    std::printf(
        "# %s over %s: measured %.2fx, predicted %.2fx -> %.0f%% of predicted "
        "(target >= 80%%: %s)\n",
        ta->spec.name.c_str(), base->spec.name.c_str(), meas, pred, meas / pred * 100,
        meas >= 0.8 * pred ? "met" : "MISSED");
  }
}

void write_jsonl(std::ostream& os, const coll::Groups& g, const topo::CostModel& model,
                 const TaPlan& plan, const BenchSetup& s,
                 const std::vector<VariantResult>& results) {
  const int P = g.size();
  os << nlohmann::json{{"bench", "moe_layer"},
                       {"kind", "config"},
                       {"ranks", P},
                       {"nodes", g.nnodes()},
                       {"layout", g.describe()},
                       {"tokens", s.tokens},
                       {"hidden", s.hidden},
                       {"k", s.k},
                       {"experts_per_rank", s.experts_per_rank},
                       {"capacity_factor", s.capacity_factor},
                       {"iters", s.iters},
                       {"rounds", s.rounds},
                       {"model_source", model.source()},
                       {"plan_source", plan.source},
                       {"rho", plan.rho},
                       {"beta", plan.beta},
                       {"planner_speedup", plan.planner_speedup},
                       {"plan_cross_share", plan_cross_share(plan, g)},
                       {"plan", plan.x}}
            .dump()
     << "\n";
  const VariantResult* base = find(results, "1");
  if (!base && !results.empty()) base = &results.front();
  const double base_t = base ? median(base->seconds) : 0,
               base_p = base ? median(base->predicted) : 0;
  for (const auto& r : results) {
    nlohmann::json phases;
    for (int ph = 0; ph < kPhases; ++ph)
      phases[kPhaseNames[ph]] = median(r.phase_seconds[ph]) * 1e3;
    const double t = median(r.seconds), p = median(r.predicted);
    os << nlohmann::json{{"bench", "moe_layer"},
                         {"kind", "variant"},
                         {"ranks", P},
                         {"nodes", g.nnodes()},
                         {"variant", r.spec.id},
                         {"name", r.spec.name},
                         {"routing", r.spec.ta ? "ta" : "uniform"},
                         {"capacity", r.spec.plan_capacity ? "plan" : "uniform"},
                         {"algo", r.algo_ran},
                         {"time_p50_ms", t * 1e3},
                         {"times_ms",
                          [&] {
                            std::vector<double> v;
                            for (double x : r.seconds) v.push_back(x * 1e3);
                            return v;
                          }()},
                         {"phase_p50_ms", phases},
                         {"predicted_ms", p * 1e3},
                         {"speedup", t > 0 ? base_t / t : 0},
                         {"predicted_speedup", p > 0 ? base_p / p : 0},
                         {"cross_node_share",
                          r.kept ? static_cast<double>(r.cross_node) / static_cast<double>(r.kept)
                                 : 0},
                         {"drop_share",
                          r.copies ? static_cast<double>(r.dropped) / static_cast<double>(r.copies)
                                   : 0},
                         {"kl_to_target", r.kl_to_target},
                         {"realized_copies", r.realized},
                         {"wrong", r.wrong}}
              .dump()
       << "\n";
  }
}

}  // namespace tamoe::bench::moe
