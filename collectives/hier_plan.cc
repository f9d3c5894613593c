#include "collectives/hier_plan.h"

#include <algorithm>

namespace tamoe::coll {

std::vector<int64_t> packed_displs(const int64_t* counts, int n) {
  std::vector<int64_t> d(n, 0);
  for (int i = 1; i < n; ++i) d[i] = d[i - 1] + counts[i - 1];
  return d;
}

namespace {
// Coordinates in the two groups of the chosen order.
struct Coords {
  const Groups& g;
  bool inter_first;
  int n1() const { return inter_first ? g.nnodes() : g.ranks_per_node(); }
  int n2() const { return inter_first ? g.ranks_per_node() : g.nnodes(); }
  int idx1(int r) const { return inter_first ? g.node_of(r) : g.local_of(r); }
  int idx2(int r) const { return inter_first ? g.local_of(r) : g.node_of(r); }
  int member1(int r, int k) const {
    return inter_first ? g.rank_of(k, g.local_of(r)) : g.rank_of(g.node_of(r), k);
  }
  int member2(int r, int j) const {
    return inter_first ? g.rank_of(g.node_of(r), j) : g.rank_of(j, g.local_of(r));
  }
};
}  // namespace

HierPlan make_hier_plan(const Groups& g, const CountMatrix& C, const int64_t* sdispls,
                        const int64_t* rdispls, bool inter_first) {
  const int P = g.size(), me = g.rank();
  Coords x{g, inter_first};
  const int n1 = x.n1(), n2 = x.n2();
  std::vector<int64_t> sd, rd;
  if (!sdispls) {
    sd = packed_displs(&C.c[static_cast<size_t>(me) * P], P);
    sdispls = sd.data();
  }
  if (!rdispls) {
    std::vector<int64_t> col(P);
    for (int s = 0; s < P; ++s) col[s] = C.at(s, me);
    rd = packed_displs(col.data(), P);
    rdispls = rd.data();
  }
  HierPlan p;
  p.inter_first = inter_first;
  p.send1_counts.assign(n1, 0);
  p.recv1_counts.assign(n1, 0);
  p.send2_counts.assign(n2, 0);
  p.recv2_counts.assign(n2, 0);

  // Phase 1 send: to G1 member k, blocks for D = member2(hop_k, j), j ascending.
  int64_t off = 0;
  for (int k = 0; k < n1; ++k) {
    int hop = x.member1(me, k);
    for (int j = 0; j < n2; ++j) {
      int D = x.member2(hop, j);
      int64_t c = C.at(me, D);
      if (c) p.pack1.push_back({sdispls[D], off, c});
      off += c;
      p.send1_counts[k] += c;
    }
  }
  p.stage_a = off;
  // Phase 1 receive (I am the hop): from G1 member k (S), blocks for my G2 members j.
  // recv layout [k][j]; remember where each (k, j) block lands.
  std::vector<int64_t> at_kj(static_cast<size_t>(n1) * n2);
  off = 0;
  for (int k = 0; k < n1; ++k) {
    int S = x.member1(me, k);
    for (int j = 0; j < n2; ++j) {
      int64_t c = C.at(S, x.member2(me, j));
      at_kj[static_cast<size_t>(k) * n2 + j] = off;
      off += c;
      p.recv1_counts[k] += c;
    }
  }
  int64_t stage_b1 = off;
  // Phase 2 send: to G2 member j (D), blocks from k ascending: stage B [k][j] -> stage A [j][k].
  off = 0;
  for (int j = 0; j < n2; ++j) {
    int D = x.member2(me, j);
    for (int k = 0; k < n1; ++k) {
      int64_t c = C.at(x.member1(me, k), D);
      if (c) p.pack2.push_back({at_kj[static_cast<size_t>(k) * n2 + j], off, c});
      off += c;
      p.send2_counts[j] += c;
    }
  }
  p.stage_a = std::max(p.stage_a, off);
  // Phase 2 receive (I am D): from G2 member j (hop), blocks from the hop's G1 members k.
  off = 0;
  for (int j = 0; j < n2; ++j) {
    int hop = x.member2(me, j);
    for (int k = 0; k < n1; ++k) {
      int S = x.member1(hop, k);
      int64_t c = C.at(S, me);
      if (c) p.unpack.push_back({off, rdispls[S], c});
      off += c;
      p.recv2_counts[j] += c;
    }
  }
  p.stage_b = std::max(stage_b1, off);
  p.send1_displs = packed_displs(p.send1_counts.data(), n1);
  p.recv1_displs = packed_displs(p.recv1_counts.data(), n1);
  p.send2_displs = packed_displs(p.send2_counts.data(), n2);
  p.recv2_displs = packed_displs(p.recv2_counts.data(), n2);
  return p;
}

}  // namespace tamoe::coll
