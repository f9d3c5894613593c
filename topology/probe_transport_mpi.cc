#include <algorithm>
#include <cstring>

#include "runtime/error.h"
#include "topology/probe_transport.h"

namespace tamoe::topo {

namespace {
class MpiTransport final : public ProbeTransport {
 public:
  MpiTransport(MPI_Comm comm, int64_t max_bytes)
      : comm_(comm), sbuf_(std::max<int64_t>(1, max_bytes), 1), rbuf_(sbuf_.size(), 0) {}
  const char* name() const override { return "mpi"; }
  bool receiver_cpu_copies() const override { return true; }

  double round_trip(int peer, bool initiator, int64_t bytes) override {
    check(bytes);
    const int n = static_cast<int>(bytes);
    double t0 = MPI_Wtime();
    if (initiator) {
      MPI_Send(sbuf_.data(), n, MPI_BYTE, peer, 7, comm_);
      MPI_Recv(rbuf_.data(), n, MPI_BYTE, peer, 7, comm_, MPI_STATUS_IGNORE);
    } else {
      MPI_Recv(rbuf_.data(), n, MPI_BYTE, peer, 7, comm_, MPI_STATUS_IGNORE);
      MPI_Send(sbuf_.data(), n, MPI_BYTE, peer, 7, comm_);
    }
    return MPI_Wtime() - t0;
  }

  double exchange(const std::vector<int>& peers, int64_t bytes) override {
    check(bytes * static_cast<int64_t>(peers.size()));
    std::vector<MPI_Request> req(2 * peers.size());
    double t0 = MPI_Wtime();
    for (size_t k = 0; k < peers.size(); ++k) {
      MPI_Irecv(rbuf_.data() + k * bytes, static_cast<int>(bytes), MPI_BYTE, peers[k], 9, comm_,
                &req[2 * k]);
      MPI_Isend(sbuf_.data() + k * bytes, static_cast<int>(bytes), MPI_BYTE, peers[k], 9, comm_,
                &req[2 * k + 1]);
    }
    MPI_Waitall(static_cast<int>(req.size()), req.data(), MPI_STATUSES_IGNORE);
    return MPI_Wtime() - t0;
  }

  double copy(int64_t bytes) override {
    check(bytes);
    double t0 = MPI_Wtime();
    std::memcpy(rbuf_.data(), sbuf_.data(), bytes);
    return MPI_Wtime() - t0;
  }

 private:
  void check(int64_t bytes) {
    if (bytes > static_cast<int64_t>(sbuf_.size()) || bytes > INT32_MAX)
      fail(Status::internal, "MPI probe transport", str("at most ", sbuf_.size(), " bytes"),
           str(bytes));
  }
  MPI_Comm comm_;
  std::vector<char> sbuf_, rbuf_;
};
}  // namespace

std::unique_ptr<ProbeTransport> make_mpi_transport(MPI_Comm comm, int64_t max_bytes) {
  return std::make_unique<MpiTransport>(comm, max_bytes);
}

#ifndef TAMOE_HAVE_CUDA
std::unique_ptr<ProbeTransport> make_nccl_transport(const Cluster&, int64_t) {
  fail(Status::unavailable, "NCCL probe", "a build with CUDA and NCCL (TAMOE_WITH_CUDA)",
       "a host-only build");
}
#endif

}  // namespace tamoe::topo
