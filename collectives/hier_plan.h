// The block plan of a two-level all-to-all(v), shared by the MPI and NCCL versions.
//
// A message from S to D travels S -> hop -> D. Phase 1 runs inside S's first group G1 (its node
// for intra-first, its rail for inter-first), phase 2 inside the hop's second group G2 (the rail,
// resp. the node): hop = member k = idx1(D) of G1(S), and D = member j = idx2(D) of G2(hop). All
// blocks are ordered by these indices, so each side can lay out buffers without extra messages.
#pragma once

#include <cstdint>
#include <vector>

#include "collectives/alltoallv.h"

namespace tamoe::coll {

struct CopyBlock {
  int64_t from = 0;  // element offsets
  int64_t to = 0;
  int64_t count = 0;
};

struct HierPlan {
  bool inter_first = false;
  // Per member of G1 (phase 1) and G2 (phase 2): counts and displacements in elements, within
  // the staging buffers.
  std::vector<int64_t> send1_counts, send1_displs, recv1_counts, recv1_displs;
  std::vector<int64_t> send2_counts, send2_displs, recv2_counts, recv2_displs;
  std::vector<CopyBlock> pack1;      // user send buffer -> stage A (phase 1 send)
  std::vector<CopyBlock> pack2;      // stage B (phase 1 recv) -> stage A (phase 2 send)
  std::vector<CopyBlock> unpack;     // stage B (phase 2 recv) -> user receive buffer
  int64_t stage_a = 0, stage_b = 0;  // elements needed in each staging buffer
};

// g must be uniform. sdispls/rdispls in elements (nullptr: packed in rank order).
HierPlan make_hier_plan(const Groups& g, const CountMatrix& counts, const int64_t* sdispls,
                        const int64_t* rdispls, bool inter_first);

}  // namespace tamoe::coll
