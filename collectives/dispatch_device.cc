#include "collectives/dispatch_device.h"

#include <cuda_runtime.h>

#include "collectives/hier_plan.h"
#include "kernels/permute.h"
#include "runtime/error.h"
#include "runtime/params.h"

namespace tamoe::coll {

std::unique_ptr<DeviceDispatch> DeviceDispatch::create(DeviceAllToAll& a2a,
                                                       const int32_t* expert_ids,
                                                       const DispatchShape& shape,
                                                       cudaStream_t stream) {
  std::unique_ptr<DeviceDispatch> h(new DeviceDispatch(a2a));
  h->update(expert_ids, shape, stream);
  return h;
}

void DeviceDispatch::update(const int32_t* expert_ids, const DispatchShape& shape,
                            cudaStream_t stream) {
  const Groups& g = a2a_->groups();
  const int P = g.size(), E = shape.experts_per_rank;
  // Ids are checked on the host (a small copy) so a bad one gets a message naming its slot.
  ids_host_.resize(std::max<int64_t>(0, shape.tokens * shape.k));
  if (!ids_host_.empty()) {
    TAMOE_CHECK_CUDA(cudaMemcpyAsync(ids_host_.data(), expert_ids,
                                     ids_host_.size() * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                     stream));
    TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream));
  }
  check_routing_input(g, ids_host_.data(), shape, "DeviceDispatch::update");
  shape_ = shape;
  P_ = P;
  returned_hidden_ = -1;
  direct_bytes_ = Params::global().get_int("TAMOE_DISPATCH_DIRECT_BYTES");
  const int64_t slots = shape.tokens * shape.k;
  const int N = P * E;
  auto* rows = static_cast<int64_t*>(slot_row_.reserve(std::max<int64_t>(1, slots) * 8));
  auto* cnt = static_cast<int64_t*>(count_dev_.reserve(static_cast<size_t>(N) * 8));
  TAMOE_CHECK_CUDA(kernels::permute_slots(expert_ids, slots, N, rows, cnt,
                                          work_.reserve(kernels::permute_slots_workspace_bytes(N)),
                                          stream));
  send_de_.assign(N, 0);
  std::vector<int64_t>& send_de = send_de_;
  TAMOE_CHECK_CUDA(
      cudaMemcpyAsync(send_de.data(), cnt, N * sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
  TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream));
  dc_ = exchange_dispatch_counts(g, send_de, E);
  send_de_off_ = packed_displs(send_de.data(), P * E);
  // Both reorder block lists, uploaded once: [0, 3B) source-major -> expert-major, [3B, 6B) back.
  const int B = P * E;
  std::vector<int64_t> lists(6 * static_cast<size_t>(B));
  for (int s = 0; s < P; ++s)
    for (int e = 0; e < E; ++e) {
      int b = s * E + e;
      const int64_t se = dc_.recv_se_off[b], es = dc_.recv_es_off[e * P + s],
                    n = dc_.recv_es[e * P + s];
      lists[b] = se;
      lists[B + b] = es;
      lists[2 * B + b] = n;
      lists[3 * B + b] = es;
      lists[4 * B + b] = se;
      lists[5 * B + b] = n;
    }
  void* d = blocks_.reserve(lists.size() * sizeof(int64_t));
  TAMOE_CHECK_CUDA(cudaMemcpyAsync(d, lists.data(), lists.size() * sizeof(int64_t),
                                   cudaMemcpyHostToDevice, stream));
  // `lists` is pageable, so the copy has left it when this returns; the sync keeps the contract
  // that the handle is ready for host-side queries (counts) and any stream once this returns.
  TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream));
}

void DeviceDispatch::reorder(const void* src, void* dst, int64_t row_bytes, bool to_expert_major,
                             cudaStream_t stream) {
  const int B = P_ * shape_.experts_per_rank;
  const auto* l = static_cast<const int64_t*>(blocks_.get()) + (to_expert_major ? 0 : 3 * B);
  TAMOE_CHECK_CUDA(kernels::copy_row_blocks(src, dst, l, l + B, l + 2 * B, B, row_bytes, stream));
}

void DeviceDispatch::exchange_blocks(const void* src, void* dst, int64_t rb, bool forward,
                                     cudaStream_t stream) {
  const int E = shape_.experts_per_rank;
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  ncclComm_t comm = a2a_->nccl().world();
  // Blocks between a pair are matched in posting order (expert order on both sides); both sides
  // skip the same empty blocks: my send_de_[p, e] is rank p's dc_.recv_es[e, me].
  TAMOE_CHECK_NCCL(ncclGroupStart());
  for (int p = 0; p < P_; ++p)
    for (int e = 0; e < E; ++e) {
      const size_t on = static_cast<size_t>(send_de_[p * E + e] * rb);
      const size_t xn = static_cast<size_t>(dc_.recv_es[e * P_ + p] * rb);
      char* origin = const_cast<char*>(forward ? s : d) + send_de_off_[p * E + e] * rb;
      char* expert = const_cast<char*>(forward ? d : s) + dc_.recv_es_off[e * P_ + p] * rb;
      if (forward) {
        if (xn) TAMOE_CHECK_NCCL(ncclRecv(expert, xn, ncclChar, p, comm, stream));
        if (on) TAMOE_CHECK_NCCL(ncclSend(origin, on, ncclChar, p, comm, stream));
      } else {
        if (on) TAMOE_CHECK_NCCL(ncclRecv(origin, on, ncclChar, p, comm, stream));
        if (xn) TAMOE_CHECK_NCCL(ncclSend(expert, xn, ncclChar, p, comm, stream));
      }
    }
  TAMOE_CHECK_NCCL(ncclGroupEnd());
}

bool DeviceDispatch::direct_blocks(int64_t rb) const {
  // Each extra NCCL op costs a few microseconds (2.4-3.4 us measured on one H100, self-traffic)
  // while the reorder pass costs 2 * bytes / copy bandwidth (~2.9 TB/s there), so blocks under
  // ~5 MB are cheaper staged; the 8 MiB default leaves a margin (docs/collectives.md).
  const double blocks = static_cast<double>(P_) * P_ * shape_.experts_per_rank;
  return static_cast<double>(dc_.counts.total()) * static_cast<double>(rb) / blocks >=
         static_cast<double>(direct_bytes_);
}

void DeviceDispatch::forward_rows(const void* send_rows, int64_t row_bytes, void* expert_rows,
                                  cudaStream_t stream) {
  RunInfo info = a2a_->choose(dc_.counts, row_bytes);
  if (info.algo == "nccl" && direct_blocks(row_bytes)) {
    exchange_blocks(send_rows, expert_rows, row_bytes, true, stream);
    last_ = info;
    return;
  }
  void* st = stage_.reserve(std::max<int64_t>(1, dc_.recv_rows * row_bytes));
  last_ = a2a_->run_named(info.algo, dc_.counts,
                          DeviceBuffers{send_rows, st, row_bytes, nullptr, nullptr}, stream);
  last_.reason = info.reason;
  reorder(st, expert_rows, row_bytes, true, stream);
}

void DeviceDispatch::reverse_rows(const void* expert_rows, int64_t row_bytes, void* send_rows,
                                  cudaStream_t stream) {
  RunInfo info = a2a_->choose(dc_.counts_t, row_bytes);
  if (info.algo == "nccl" && direct_blocks(row_bytes)) {
    exchange_blocks(expert_rows, send_rows, row_bytes, false, stream);
    last_ = info;
    return;
  }
  void* st = stage_.reserve(std::max<int64_t>(1, dc_.recv_rows * row_bytes));
  reorder(expert_rows, st, row_bytes, false, stream);
  last_ = a2a_->run_named(info.algo, dc_.counts_t,
                          DeviceBuffers{st, send_rows, row_bytes, nullptr, nullptr}, stream);
  last_.reason = info.reason;
}

void DeviceDispatch::dispatch(const void* x, int64_t hidden, DType dtype, void* recv,
                              cudaStream_t stream) {
  const int64_t rb = hidden * dtype_bytes(dtype);
  void* s = send_.reserve(std::max<int64_t>(1, dc_.send_rows * rb));
  TAMOE_CHECK_CUDA(kernels::permute_rows(x, static_cast<const int64_t*>(slot_row_.get()),
                                         shape_.tokens, shape_.k, rb, s, stream));
  forward_rows(s, rb, recv, stream);
}

void DeviceDispatch::combine(const void* y, const float* weights, int64_t hidden, DType dtype,
                             void* out, cudaStream_t stream) {
  const int64_t rb = hidden * dtype_bytes(dtype);
  void* r = returned_.reserve(std::max<int64_t>(1, dc_.send_rows * rb));
  reverse_rows(y, rb, r, stream);
  returned_hidden_ = hidden;
  returned_dtype_ = dtype;
  TAMOE_CHECK_CUDA(kernels::unpermute_combine(r, static_cast<const int64_t*>(slot_row_.get()),
                                              weights, shape_.tokens, shape_.k, hidden,
                                              static_cast<int>(dtype), out, stream));
}

void DeviceDispatch::dispatch_backward(const void* grad_recv, int64_t hidden, DType dtype,
                                       void* grad_x, cudaStream_t stream) {
  const int64_t rb = hidden * dtype_bytes(dtype);
  void* s = send_.reserve(std::max<int64_t>(1, dc_.send_rows * rb));
  reverse_rows(grad_recv, rb, s, stream);
  TAMOE_CHECK_CUDA(kernels::unpermute_combine(s, static_cast<const int64_t*>(slot_row_.get()),
                                              nullptr, shape_.tokens, shape_.k, hidden,
                                              static_cast<int>(dtype), grad_x, stream));
}

void DeviceDispatch::combine_backward(const void* grad_out, const float* weights, int64_t hidden,
                                      DType dtype, void* grad_y, float* grad_weights,
                                      cudaStream_t stream) {
  if (returned_hidden_ != hidden || returned_dtype_ != dtype)
    fail(Status::invalid_argument, "DeviceDispatch::combine_backward",
         str("a combine with hidden ", hidden, " and dtype ", dtype_name(dtype), " before"),
         returned_hidden_ < 0
             ? std::string("no combine")
             : str("hidden ", returned_hidden_, ", ", dtype_name(returned_dtype_)));
  const int64_t rb = hidden * dtype_bytes(dtype);
  void* s = send_.reserve(std::max<int64_t>(1, dc_.send_rows * rb));
  TAMOE_CHECK_CUDA(kernels::combine_backward_scatter(
      grad_out, returned_.get(), static_cast<const int64_t*>(slot_row_.get()), weights,
      shape_.tokens, shape_.k, hidden, static_cast<int>(dtype), s, grad_weights, stream));
  forward_rows(s, rb, grad_y, stream);
}

}  // namespace tamoe::coll
