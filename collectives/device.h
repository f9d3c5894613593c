// The device (CUDA + NCCL) all-to-all(v): NCCL communicators on the world, node and rail groups
// bootstrapped through MPI, and the algorithms "nccl" (grouped ncclSend/ncclRecv over all
// ranks), "hier" and "hier_inter_first" (the two-level plan of hier_plan.h on the node and rail
// communicators, staging copies by one batched kernel). NCCL 2.28 has no alltoallv.
// Built only with TAMOE_HAVE_CUDA. Streams are passed as cudaStream_t.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>
#include <string>
#include <vector>

#include "collectives/alltoallv.h"
#include "runtime/cuda_check.h"

namespace tamoe::coll {

// Owns its NCCL communicators. create() is collective over g.world(); it throws
// Status::unavailable on every rank when any rank has no CUDA device (so callers and tests can
// skip), and binds each rank to device local_rank % device_count.
class NcclGroups {
 public:
  static std::unique_ptr<NcclGroups> create(const Groups& g);
  ~NcclGroups();
  NcclGroups(const NcclGroups&) = delete;
  NcclGroups& operator=(const NcclGroups&) = delete;
  const Groups& groups() const { return g_; }
  ncclComm_t world() const { return world_; }
  ncclComm_t node() const { return node_; }
  ncclComm_t rail() const { return rail_; }
  int device() const { return device_; }

 private:
  explicit NcclGroups(const Groups& g) : g_(g) {}
  const Groups& g_;
  ncclComm_t world_ = nullptr, node_ = nullptr, rail_ = nullptr;
  int device_ = -1;
};

// A growable device buffer.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* reserve(size_t bytes);  // keeps nothing when it grows
  void* get() const { return p_; }
  size_t bytes() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

struct DeviceBuffers {
  const void* send = nullptr;  // device pointers
  void* recv = nullptr;
  int64_t elem_bytes = 1;
  const int64_t* sdispls = nullptr;  // host arrays, elements; nullptr: packed
  const int64_t* rdispls = nullptr;
};

class DeviceAlgorithm : public Algorithm {
 public:
  // Enqueues on `stream`; returns without synchronizing.
  virtual void run(const NcclGroups& n, const CountMatrix& counts, const DeviceBuffers& b,
                   cudaStream_t stream) = 0;
};
std::vector<std::unique_ptr<DeviceAlgorithm>> make_device_algorithms();

// Device counterpart of AllToAll. Override names: "nccl", "hier", "hier_inter_first"; "mpi" and
// "pairwise" in TAMOE_A2A_ALGO mean the flat "nccl" here.
class DeviceAllToAll {
 public:
  explicit DeviceAllToAll(const NcclGroups& n, AllToAllOptions opts = {});
  ~DeviceAllToAll();
  RunInfo run(const CountMatrix& counts, const DeviceBuffers& b, cudaStream_t stream);
  // The algorithm run() would pick for these counts (override, else cost model), without running
  // it; lets DeviceDispatch place flat-NCCL blocks directly in its layouts.
  RunInfo choose(const CountMatrix& counts, int64_t elem_bytes) const;
  RunInfo run_named(const std::string& algo, const CountMatrix& counts, const DeviceBuffers& b,
                    cudaStream_t stream);
  const NcclGroups& nccl() const { return n_; }
  const Groups& groups() const { return n_.groups(); }
  static const std::vector<std::string>& algorithm_names();

 private:
  const NcclGroups& n_;
  AllToAllOptions opts_;
  AlgoSpec spec_;
  std::vector<std::unique_ptr<DeviceAlgorithm>> algos_;
};

}  // namespace tamoe::coll
