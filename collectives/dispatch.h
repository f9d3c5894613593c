// MoE dispatch and combine on the host (MPI), with a handle that the reverse direction and the
// backward pass reuse (DESIGN.md section 2, steps 3-8).
//
// Routing output comes as raw arrays so this layer does not depend on routing's classes:
//   expert_ids [tokens * k] int32, global expert id, -1 = dropped (never sent, weight ignored);
//   weights    [tokens * k] float, the combine weights.
// Global expert e lives on rank e / experts_per_rank as local expert e % experts_per_rank.
//
// Layouts (rows of `hidden` elements of `dtype`):
//   send (internal) [dest rank][local expert][token slot], slots in (token, k) order;
//   expert side     [local expert][source rank][token slot] -- contiguous per expert, ready for a
//                   grouped GEMM; expert_counts() gives the rows per (expert, source).
//
// Math (per token t of this rank, slots s = (t, i) that are not dropped):
//   dispatch:          recv[row(s)] = x[t]
//   combine:           out[t] = sum_i w[t,i] * y[row(s)]
//   dispatch backward: dx[t] = sum_i dRecv[row(s)]                 (combine without weights)
//   combine backward:  dY[row(s)] = w[t,i] * dOut[t]                (dispatch of weighted grads)
//                      dw[t,i] = <dOut[t], y[row(s)]>               (y kept from combine)
// Every call is collective over the groups' world communicator.
#pragma once

#include <cstdint>
#include <vector>

#include "collectives/alltoallv.h"
#include "collectives/types.h"

namespace tamoe::coll {

struct DispatchShape {
  int64_t tokens = 0;        // tokens on this rank (may be 0)
  int k = 1;                 // expert slots per token
  int experts_per_rank = 1;  // same on every rank
};

// Collective: checks the shape and host copies of the expert ids on every rank, then agrees, so
// bad input on one rank makes every rank throw (that rank with the detail: token, slot, value;
// the others naming it) instead of leaving them in the count exchange. experts_per_rank must be
// the same everywhere (Status::mismatch otherwise).
void check_routing_input(const Groups& g, const int32_t* expert_ids, const DispatchShape& shape,
                         const char* who);

// What both dispatch handles (host and device) derive from this rank's slot counts per (dest rank,
// local expert), send_de[d * E + e]: the rows each pair exchanges and the expert-side split.
struct DispatchCounts {
  CountMatrix counts, counts_t;               // rows from rank i to rank j, and the transpose
  std::vector<int64_t> recv_es, recv_es_off;  // [e * P + s]: rows from source s for local expert e
  std::vector<int64_t> recv_se_off;           // [s * E + e]: offset in the [source][expert] staging
  int64_t send_rows = 0, recv_rows = 0;
};

// Collective: one MPI_Alltoall of experts_per_rank counts per pair, then the checked count matrix
// (exchange_counts).
DispatchCounts exchange_dispatch_counts(const Groups& g, const std::vector<int64_t>& send_de,
                                        int experts_per_rank);

class HostDispatch {
 public:
  // Collective: counts slots per (dest rank, local expert), exchanges them (one MPI_Alltoall of
  // experts_per_rank counts per pair plus the checked count matrix). Throws invalid_argument on an
  // expert id outside [-1, P * experts_per_rank), naming the token and slot.
  static HostDispatch create(AllToAll& a2a, const int32_t* expert_ids, const DispatchShape& shape);

  // Rows this rank receives as expert side, and their split: counts[e * P + s] rows from source
  // rank s for local expert e; offsets likewise (first row of each (e, s) block).
  int64_t recv_rows() const { return dc_.recv_rows; }
  const std::vector<int64_t>& expert_counts() const { return dc_.recv_es; }
  const std::vector<int64_t>& expert_offsets() const { return dc_.recv_es_off; }
  int64_t expert_rows(int e) const;  // rows for local expert e, all sources
  int64_t send_rows() const { return dc_.send_rows; }
  const DispatchShape& shape() const { return shape_; }
  const RunInfo& last_run() const { return last_; }

  // x [tokens][hidden] -> recv [recv_rows][hidden].
  void dispatch(const void* x, int64_t hidden, DType dtype, void* recv);
  // y [recv_rows][hidden] (expert outputs) -> out [tokens][hidden]; keeps the returned rows for
  // combine_backward. Dropped slots contribute nothing; a token with every slot dropped gets 0.
  void combine(const void* y, const float* weights, int64_t hidden, DType dtype, void* out);
  // grad_recv [recv_rows][hidden] -> grad_x [tokens][hidden].
  void dispatch_backward(const void* grad_recv, int64_t hidden, DType dtype, void* grad_x);
  // grad_out [tokens][hidden] -> grad_y [recv_rows][hidden], grad_weights [tokens * k] (0 for
  // dropped slots). Needs a combine with the same hidden and dtype before.
  void combine_backward(const void* grad_out, const float* weights, int64_t hidden, DType dtype,
                        void* grad_y, float* grad_weights);

 private:
  HostDispatch(AllToAll& a2a) : a2a_(&a2a) {}
  // Send-layout rows (origin side) <-> expert-side rows through the all-to-all.
  void forward_rows(const char* send_rows, int64_t row_bytes, char* expert_rows);
  void reverse_rows(const char* expert_rows, int64_t row_bytes, char* send_rows);

  AllToAll* a2a_;
  DispatchShape shape_;
  int P_ = 1;
  std::vector<int64_t> slot_row_;  // [tokens * k] send-layout row or -1
  DispatchCounts dc_;
  std::vector<char> stage_, returned_;  // staging; rows returned by combine (send layout)
  int64_t returned_hidden_ = -1;
  DType returned_dtype_ = DType::f32;
  RunInfo last_;
};

}  // namespace tamoe::coll
