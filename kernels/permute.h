// CUDA kernels of MoE dispatch/combine with raw-pointer host launchers: slot -> send-row
// assignment, permute into the send layout, un-permute with the weighted sum of the k expert
// outputs, the combine backward scatter (weighted gradients + weight gradients), and a batched
// row-block copy used for layout changes and the hierarchical all-to-all's staging.
//
// Every launcher is asynchronous on `stream` and returns the launch status. Element types follow
// tamoe::coll::DType (0 f32, 1 f64, 2 bf16); sums accumulate in f32 (f64 for f64).
// Slot s = t * k + i is token t's i-th expert; expert id -1 means dropped.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tamoe::kernels {

enum PermuteDType : int { kPermF32 = 0, kPermF64 = 1, kPermBF16 = 2 };

// Stable send rows: slot_row[s] = first row of expert ids[s] + number of earlier slots with the
// same expert, where experts are ordered by global id (== [dest rank][local expert]); -1 for
// dropped slots. Also writes expert_count[nexperts] (slots per global expert). `workspace` needs
// permute_slots_workspace_bytes(nexperts) bytes of device memory.
size_t permute_slots_workspace_bytes(int nexperts);
cudaError_t permute_slots(const int32_t* expert_ids, int64_t slots, int nexperts, int64_t* slot_row,
                          int64_t* expert_count, void* workspace, cudaStream_t stream);

// send[slot_row[s]] = x[s / k] for every kept slot (rows of row_bytes bytes).
cudaError_t permute_rows(const void* x, const int64_t* slot_row, int64_t tokens, int k,
                         int64_t row_bytes, void* send, cudaStream_t stream);

// out[t] = sum_i w[t,i] * rows[slot_row[t,i]] over kept slots (weights null: w = 1, the dispatch
// backward). A token with no kept slot gets 0.
cudaError_t unpermute_combine(const void* rows, const int64_t* slot_row, const float* weights,
                              int64_t tokens, int k, int64_t hidden, int dtype, void* out,
                              cudaStream_t stream);

// Combine backward: send[slot_row[t,i]] = w[t,i] * grad_out[t] and
// grad_weights[t,i] = <grad_out[t], rows[slot_row[t,i]]> (0 for dropped slots).
cudaError_t combine_backward_scatter(const void* grad_out, const void* rows,
                                     const int64_t* slot_row, const float* weights, int64_t tokens,
                                     int k, int64_t hidden, int dtype, void* send,
                                     float* grad_weights, cudaStream_t stream);

// dst[to[b] ... + count[b] rows] = src[from[b] ...] for b < nblocks (device arrays, in rows).
cudaError_t copy_row_blocks(const void* src, void* dst, const int64_t* from, const int64_t* to,
                            const int64_t* count, int nblocks, int64_t row_bytes,
                            cudaStream_t stream);

}  // namespace tamoe::kernels
