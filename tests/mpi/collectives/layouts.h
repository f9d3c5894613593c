// Rank layouts the collective tests run on at any rank count: one node, every virtual-node split
// that divides the ranks, and an uneven split (first node one rank larger).
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace tamoe::test {

struct Layout {
  std::string name;
  std::vector<int> node_of;
  bool uniform = true;
};

inline std::vector<Layout> test_layouts(int P) {
  std::vector<Layout> out;
  for (int n = 1; n <= P; ++n) {
    if (P % n != 0) continue;
    if (n > 4 && n != P) continue;  // keep the suite fast
    Layout l{std::to_string(n) + " nodes x " + std::to_string(P / n), std::vector<int>(P), true};
    for (int r = 0; r < P; ++r) l.node_of[r] = r / (P / n);
    out.push_back(l);
  }
  if (P >= 3) {
    Layout l{"uneven", std::vector<int>(P), false};
    int first = P / 2 + 1;
    for (int r = 0; r < P; ++r) l.node_of[r] = r < first ? 0 : 1;
    out.push_back(l);
  }
  return out;
}

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

}  // namespace tamoe::test
