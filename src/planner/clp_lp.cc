#include "planner/clp_lp.h"

#include <chrono>
#include <cmath>

#include "runtime/error.h"

#ifdef TAMOE_HAVE_CLP
#include <ClpSimplex.hpp>
#include <CoinPackedMatrix.hpp>
#endif

namespace tamoe::plan {

int LinearProgram::add_col(double cost, double lo, double hi) {
  obj.push_back(cost);
  col_lo.push_back(lo);
  col_hi.push_back(hi);
  return static_cast<int>(obj.size()) - 1;
}

int LinearProgram::add_row(double lo, double hi) {
  row_lo.push_back(lo);
  row_hi.push_back(hi);
  return static_cast<int>(row_lo.size()) - 1;
}

void LinearProgram::add(int row, int col, double v) {
  a_row.push_back(row);
  a_col.push_back(col);
  a_val.push_back(v);
}

bool have_clp() {
#ifdef TAMOE_HAVE_CLP
  return true;
#else
  return false;
#endif
}

LpSolution solve_lp(const LinearProgram& lp, const std::string& where) {
#ifndef TAMOE_HAVE_CLP
  fail(Status::unavailable, where, "a build with COIN-OR CLP (coinor-libclp-dev)",
       "tamoe built without CLP; use --mode sinkhorn");
#else
  auto t0 = std::chrono::steady_clock::now();
  const int ncols = static_cast<int>(lp.obj.size()), nrows = static_cast<int>(lp.row_lo.size());
  CoinPackedMatrix a(true, lp.a_row.data(), lp.a_col.data(), lp.a_val.data(),
                     static_cast<CoinBigIndex>(lp.a_val.size()));
  // Empty trailing rows/columns are not seen by the triplet constructor.
  a.setDimensions(nrows, ncols);
  // Bounds at or beyond 1e30 mean "none"; CLP's infinity is COIN_DBL_MAX, and a huge finite
  // bound instead costs it accuracy.
  auto inf = [](std::vector<double> v) {
    for (double& b : v)
      if (std::abs(b) >= 1e30) b = b > 0 ? COIN_DBL_MAX : -COIN_DBL_MAX;
    return v;
  };
  std::vector<double> clo = inf(lp.col_lo), chi = inf(lp.col_hi), rlo = inf(lp.row_lo),
                      rhi = inf(lp.row_hi);
  ClpSimplex model;
  model.setLogLevel(0);
  model.loadProblem(a, clo.data(), chi.data(), lp.obj.data(), rlo.data(), rhi.data());
  model.setPrimalTolerance(1e-10);
  model.setDualTolerance(1e-10);
  // initialSolve presolves and picks the algorithm; on the dispatch LP (many columns that
  // differ only in which link rows they touch) this is ~10x faster than a plain dual simplex.
  model.initialSolve();
  if (!model.isProvenOptimal()) {
    // A second try from the dual's end point with the primal simplex clears most numerical
    // stalls; infeasible or unbounded models fail here with CLP's status.
    model.primal(1);
  }
  if (!model.isProvenOptimal())
    fail(Status::internal, where, "an optimal LP solution from CLP",
         str("CLP status ", model.status(), " secondary ", model.secondaryStatus(), " after ",
             model.numberIterations(), " iterations"));
  LpSolution s;
  s.x.assign(model.primalColumnSolution(), model.primalColumnSolution() + ncols);
  s.row_duals.assign(model.dualRowSolution(), model.dualRowSolution() + nrows);
  s.objective = model.objectiveValue();
  s.iterations = model.numberIterations();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
#endif
}

}  // namespace tamoe::plan
