// The probe over NCCL on device memory (built only with CUDA).
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>

#include "runtime/cuda_check.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "topology/probe_transport.h"

namespace tamoe::topo {

namespace {
double wall() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class NcclTransport final : public ProbeTransport {
 public:
  NcclTransport(const Cluster& c, int64_t max_bytes) : bytes_(std::max<int64_t>(1, max_bytes)) {
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    HostLocal host = host_local(c.world());
    // One GPU per rank on every host, or no rank builds a communicator (no hang, no NCCL
    // "duplicate GPU" failure on a partial job).
    int ok = (e == cudaSuccess && ndev >= host.size) ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, c.world());
    if (!ok)
      fail(Status::unavailable, str("NCCL probe on rank ", c.rank()),
           "one CUDA device per rank on every host",
           e == cudaSuccess ? str(host.size, " ranks sharing ", ndev,
                                  " devices on this host (or fewer elsewhere)")
                            : std::string(cudaGetErrorString(e)));
    TAMOE_CHECK_CUDA(cudaSetDevice(host.rank));
    TAMOE_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    TAMOE_CHECK_CUDA(cudaMalloc(&sbuf_, bytes_));
    TAMOE_CHECK_CUDA(cudaMalloc(&rbuf_, bytes_));
    TAMOE_CHECK_CUDA(cudaMemset(sbuf_, 1, bytes_));
    ncclUniqueId id;
    if (c.rank() == 0) TAMOE_CHECK_NCCL(ncclGetUniqueId(&id));
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, c.world());
    TAMOE_CHECK_NCCL(ncclCommInitRank(&comm_, c.size(), id, c.rank()));
    TAMOE_LOGF(info, "probe") << "NCCL probe transport on device " << host.rank;
  }
  ~NcclTransport() override {
    if (comm_) ncclCommDestroy(comm_);
    cudaFree(sbuf_);
    cudaFree(rbuf_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  const char* name() const override { return "nccl"; }
  bool receiver_cpu_copies() const override { return false; }

  double round_trip(int peer, bool initiator, int64_t bytes) override {
    check(bytes);
    double t0 = wall();
    if (initiator) {
      TAMOE_CHECK_NCCL(ncclSend(sbuf_, bytes, ncclChar, peer, comm_, stream_));
      TAMOE_CHECK_NCCL(ncclRecv(rbuf_, bytes, ncclChar, peer, comm_, stream_));
    } else {
      TAMOE_CHECK_NCCL(ncclRecv(rbuf_, bytes, ncclChar, peer, comm_, stream_));
      TAMOE_CHECK_NCCL(ncclSend(sbuf_, bytes, ncclChar, peer, comm_, stream_));
    }
    TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream_));
    return wall() - t0;
  }

  double exchange(const std::vector<int>& peers, int64_t bytes) override {
    check(bytes * static_cast<int64_t>(peers.size()));
    double t0 = wall();
    TAMOE_CHECK_NCCL(ncclGroupStart());
    for (size_t k = 0; k < peers.size(); ++k) {
      TAMOE_CHECK_NCCL(ncclSend(static_cast<char*>(sbuf_) + k * bytes, bytes, ncclChar, peers[k],
                                comm_, stream_));
      TAMOE_CHECK_NCCL(ncclRecv(static_cast<char*>(rbuf_) + k * bytes, bytes, ncclChar, peers[k],
                                comm_, stream_));
    }
    TAMOE_CHECK_NCCL(ncclGroupEnd());
    TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream_));
    return wall() - t0;
  }

  double copy(int64_t bytes) override {
    check(bytes);
    double t0 = wall();
    TAMOE_CHECK_CUDA(cudaMemcpyAsync(rbuf_, sbuf_, bytes, cudaMemcpyDeviceToDevice, stream_));
    TAMOE_CHECK_CUDA(cudaStreamSynchronize(stream_));
    return wall() - t0;
  }

 private:
  void check(int64_t bytes) {
    if (bytes > bytes_)
      fail(Status::internal, "NCCL probe transport", str("at most ", bytes_, " bytes"), str(bytes));
  }
  int64_t bytes_;
  void* sbuf_ = nullptr;
  void* rbuf_ = nullptr;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
};
}  // namespace

std::unique_ptr<ProbeTransport> make_nccl_transport(const Cluster& cluster, int64_t max_bytes) {
  return std::make_unique<NcclTransport>(cluster, max_bytes);
}

}  // namespace tamoe::topo
