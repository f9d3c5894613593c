// MoE dispatch and combine on the device: the same handle, layouts and math as HostDispatch
// (dispatch.h), with CUDA permute kernels (kernels/permute.h) and the NCCL all-to-all
// (device.h). All pointers are device pointers except where noted; every call enqueues on
// `stream`. create() synchronizes `stream` once (counts go to the host for NCCL's sizes).
#pragma once

#include "collectives/device.h"
#include "collectives/dispatch.h"

namespace tamoe::coll {

class DeviceDispatch {
 public:
  // Collective. expert_ids: device [tokens * k].
  static std::unique_ptr<DeviceDispatch> create(DeviceAllToAll& a2a, const int32_t* expert_ids,
                                                const DispatchShape& shape, cudaStream_t stream);
  // Collective: re-plans this handle for new routing (the next step's expert ids), keeping its
  // device buffers, so a training step pays no cudaMalloc/cudaFree once the sizes have been seen.
  // Invalidates the rows kept by the last combine.
  void update(const int32_t* expert_ids, const DispatchShape& shape, cudaStream_t stream);
  int64_t recv_rows() const { return dc_.recv_rows; }
  int64_t send_rows() const { return dc_.send_rows; }
  const std::vector<int64_t>& expert_counts() const { return dc_.recv_es; }  // host, [e * P + s]
  const std::vector<int64_t>& expert_offsets() const { return dc_.recv_es_off; }
  const RunInfo& last_run() const { return last_; }
  // Whether flat NCCL moves rows of row_bytes one block per (peer, expert) straight into the
  // other layout (mean block >= TAMOE_DISPATCH_DIRECT_BYTES) instead of one message per peer plus
  // a reorder pass. The same on every rank (from the shared count matrix).
  bool direct_blocks(int64_t row_bytes) const;

  void dispatch(const void* x, int64_t hidden, DType dtype, void* recv, cudaStream_t stream);
  // weights: device [tokens * k].
  void combine(const void* y, const float* weights, int64_t hidden, DType dtype, void* out,
               cudaStream_t stream);
  void dispatch_backward(const void* grad_recv, int64_t hidden, DType dtype, void* grad_x,
                         cudaStream_t stream);
  void combine_backward(const void* grad_out, const float* weights, int64_t hidden, DType dtype,
                        void* grad_y, float* grad_weights, cudaStream_t stream);

 private:
  explicit DeviceDispatch(DeviceAllToAll& a2a) : a2a_(&a2a) {}
  void forward_rows(const void* send_rows, int64_t row_bytes, void* expert_rows,
                    cudaStream_t stream);
  void reverse_rows(const void* expert_rows, int64_t row_bytes, void* send_rows,
                    cudaStream_t stream);
  void reorder(const void* src, void* dst, int64_t row_bytes, bool to_expert_major,
               cudaStream_t stream);
  // Flat NCCL with one send/recv per (peer, local expert) block, each placed directly in the
  // other layout: no staging buffer and no reorder pass. forward: send layout -> expert side.
  void exchange_blocks(const void* src, void* dst, int64_t row_bytes, bool forward,
                       cudaStream_t stream);

  DeviceAllToAll* a2a_;
  DispatchShape shape_;
  int P_ = 1;
  DeviceBuffer slot_row_;          // int64 [tokens * k]
  DeviceBuffer count_dev_, work_;  // permute_slots' counts and workspace
  std::vector<int32_t> ids_host_;
  DispatchCounts dc_;
  std::vector<int64_t> send_de_, send_de_off_;     // [d * E + e]: rows to rank d's local expert e
  DeviceBuffer send_, stage_, returned_, blocks_;  // blocks_: both reorder block lists
  int64_t direct_bytes_ = 0;                       // TAMOE_DISPATCH_DIRECT_BYTES at update()
  int64_t returned_hidden_ = -1;
  DType returned_dtype_ = DType::f32;
  RunInfo last_;
};

}  // namespace tamoe::coll
