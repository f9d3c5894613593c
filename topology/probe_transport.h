// What the probe measures through: MPI on host memory, or NCCL on device memory. The probe's
// control (pair schedule, barriers, reductions of timings) always runs on MPI; a transport only
// moves the bytes and times them on the calling rank.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "topology/cluster.h"

namespace tamoe::topo {

class ProbeTransport {
 public:
  virtual ~ProbeTransport() = default;
  virtual const char* name() const = 0;
  // One round trip of `bytes` each way with `peer` (the `initiator` sends first); seconds.
  virtual double round_trip(int peer, bool initiator, int64_t bytes) = 0;
  // Sends `bytes` to and receives `bytes` from each peer, all at once; seconds on this rank.
  virtual double exchange(const std::vector<int>& peers, int64_t bytes) = 0;
  // A local copy of `bytes`; seconds.
  virtual double copy(int64_t bytes) = 0;
  // True where the receiving CPU performs every copy (MPI on host memory): local copies then
  // compete with receives for the same core (CostModel::set_self_on_ingress).
  virtual bool receiver_cpu_copies() const = 0;
};

// MPI point-to-point on host buffers of up to `max_bytes` per peer.
std::unique_ptr<ProbeTransport> make_mpi_transport(MPI_Comm comm, int64_t max_bytes);

// NCCL on device buffers (one GPU per rank: local rank modulo visible devices), bootstrapped over
// MPI. Collective. Throws tamoe::Error (unavailable) when built without CUDA or with no device.
std::unique_ptr<ProbeTransport> make_nccl_transport(const Cluster& cluster, int64_t max_bytes);

}  // namespace tamoe::topo
