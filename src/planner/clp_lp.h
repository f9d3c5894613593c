// A thin interface to COIN-OR CLP: a linear program as bounds + sparse triplets, solved by the
// simplex. Keeps CLP headers out of the planner's public headers.
#pragma once

#include <string>
#include <vector>

namespace tamoe::plan {

// minimize obj . x  s.t.  row_lo <= A x <= row_hi,  col_lo <= x <= col_hi; a bound of
// magnitude 1e30 or more means unbounded.
struct LinearProgram {
  std::vector<double> obj, col_lo, col_hi;
  std::vector<double> row_lo, row_hi;
  std::vector<int> a_row, a_col;  // triplets of A
  std::vector<double> a_val;

  int add_col(double cost, double lo, double hi);
  int add_row(double lo, double hi);
  void add(int row, int col, double v);
};

struct LpSolution {
  std::vector<double> x;
  std::vector<double> row_duals;
  double objective = 0;
  int iterations = 0;
  double seconds = 0;
};

// True when tamoe was built with CLP.
bool have_clp();
// Solves with CLP (presolve + its choice of simplex) at tight tolerances (1e-10 primal) so plans
// meet their marginals. Throws tamoe::Error (Status::unavailable without CLP, Status::internal when
// CLP does not report an optimum) naming `where`.
LpSolution solve_lp(const LinearProgram& lp, const std::string& where);

}  // namespace tamoe::plan
