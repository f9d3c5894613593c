#include "collectives/device.h"

#include <cuda_runtime.h>

#include "collectives/hier_plan.h"
#include "kernels/permute.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/params.h"
#include "topology/cluster.h"

namespace tamoe::coll {

namespace {

ncclComm_t make_comm(MPI_Comm comm) {
  int rank = 0, size = 0;
  TAMOE_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  TAMOE_CHECK_MPI(MPI_Comm_size(comm, &size));
  ncclUniqueId id;
  if (rank == 0) TAMOE_CHECK_NCCL(ncclGetUniqueId(&id));
  TAMOE_CHECK_MPI(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, comm));
  ncclComm_t c = nullptr;
  TAMOE_CHECK_NCCL(ncclCommInitRank(&c, size, id, rank));
  return c;
}

// Grouped send/recv of per-peer blocks on one communicator (peer index == rank in `comm`).
void grouped_exchange(ncclComm_t comm, const char* send, const std::vector<int64_t>& sc,
                      const std::vector<int64_t>& sd, char* recv, const std::vector<int64_t>& rc,
                      const std::vector<int64_t>& rd, int64_t eb, cudaStream_t stream) {
  TAMOE_CHECK_NCCL(ncclGroupStart());
  for (size_t p = 0; p < sc.size(); ++p) {
    if (rc[p])
      TAMOE_CHECK_NCCL(ncclRecv(recv + rd[p] * eb, static_cast<size_t>(rc[p] * eb), ncclChar,
                                static_cast<int>(p), comm, stream));
    if (sc[p])
      TAMOE_CHECK_NCCL(ncclSend(send + sd[p] * eb, static_cast<size_t>(sc[p] * eb), ncclChar,
                                static_cast<int>(p), comm, stream));
  }
  TAMOE_CHECK_NCCL(ncclGroupEnd());
}

// Uploads a block list and copies with one kernel launch.
class BlockCopier {
 public:
  void copy(const std::vector<CopyBlock>& blocks, const void* src, void* dst, int64_t eb,
            cudaStream_t stream) {
    if (blocks.empty()) return;
    const size_t n = blocks.size();
    host_.resize(3 * n);
    for (size_t i = 0; i < n; ++i) {
      host_[i] = blocks[i].from;
      host_[n + i] = blocks[i].to;
      host_[2 * n + i] = blocks[i].count;
    }
    auto* d = static_cast<int64_t*>(dev_.reserve(3 * n * sizeof(int64_t)));
    // From pageable memory the copy is staged before the call returns, so host_ may change next.
    TAMOE_CHECK_CUDA(
        cudaMemcpyAsync(d, host_.data(), 3 * n * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
    TAMOE_CHECK_CUDA(
        kernels::copy_row_blocks(src, dst, d, d + n, d + 2 * n, static_cast<int>(n), eb, stream));
  }

 private:
  std::vector<int64_t> host_;
  DeviceBuffer dev_;
};

class NcclFlat final : public DeviceAlgorithm {
 public:
  std::string name() const override { return "nccl"; }
  bool supports(const Groups&, std::string*) const override { return true; }
  double estimate(const topo::CostModel& m, const Groups&,
                  const std::vector<double>& bytes) const override {
    return m.predict_seconds(bytes);
  }
  void run(const NcclGroups& n, const CountMatrix& C, const DeviceBuffers& b,
           cudaStream_t stream) override {
    const Groups& g = n.groups();
    const int P = g.size(), me = g.rank();
    std::vector<int64_t> sc(P), rc(P);
    for (int j = 0; j < P; ++j) {
      sc[j] = C.at(me, j);
      rc[j] = C.at(j, me);
    }
    auto sd =
        b.sdispls ? std::vector<int64_t>(b.sdispls, b.sdispls + P) : packed_displs(sc.data(), P);
    auto rd =
        b.rdispls ? std::vector<int64_t>(b.rdispls, b.rdispls + P) : packed_displs(rc.data(), P);
    grouped_exchange(n.world(), static_cast<const char*>(b.send), sc, sd,
                     static_cast<char*>(b.recv), rc, rd, b.elem_bytes, stream);
  }
};

class NcclHier final : public DeviceAlgorithm {
 public:
  explicit NcclHier(bool inter_first) : inter_first_(inter_first) {}
  std::string name() const override { return inter_first_ ? "hier_inter_first" : "hier"; }
  bool supports(const Groups& g, std::string* why) const override { return hier_supports(g, why); }
  double estimate(const topo::CostModel& m, const Groups& g,
                  const std::vector<double>& bytes) const override {
    return hier_estimate(m, g, bytes, inter_first_);
  }
  void run(const NcclGroups& n, const CountMatrix& C, const DeviceBuffers& b,
           cudaStream_t stream) override {
    const Groups& g = n.groups();
    std::string why;
    if (!hier_supports(g, &why))
      fail(Status::invalid_argument, str("device all-to-all ", name()), "a uniform layout", why);
    const int64_t eb = b.elem_bytes;
    HierPlan p = make_hier_plan(g, C, b.sdispls, b.rdispls, inter_first_);
    char* a = static_cast<char*>(a_.reserve(std::max<int64_t>(1, p.stage_a * eb)));
    char* s = static_cast<char*>(b_.reserve(std::max<int64_t>(1, p.stage_b * eb)));
    ncclComm_t c1 = inter_first_ ? n.rail() : n.node();
    ncclComm_t c2 = inter_first_ ? n.node() : n.rail();
    copier_.copy(p.pack1, b.send, a, eb, stream);
    grouped_exchange(c1, a, p.send1_counts, p.send1_displs, s, p.recv1_counts, p.recv1_displs, eb,
                     stream);
    copier_.copy(p.pack2, s, a, eb, stream);
    grouped_exchange(c2, a, p.send2_counts, p.send2_displs, s, p.recv2_counts, p.recv2_displs, eb,
                     stream);
    copier_.copy(p.unpack, s, b.recv, eb, stream);
  }

 private:
  bool inter_first_;
  DeviceBuffer a_, b_;
  BlockCopier copier_;
};

}  // namespace

std::unique_ptr<NcclGroups> NcclGroups::create(const Groups& g) {
  int ndev = 0;
  cudaError_t e = cudaGetDeviceCount(&ndev);
  topo::HostLocal host = topo::host_local(g.world());
  // One GPU per rank on every host; all ranks agree before any NCCL call, so a job with a
  // device-less or oversubscribed host fails together.
  int ok = (e == cudaSuccess && ndev >= host.size) ? 1 : 0;
  TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, g.world()));
  if (!ok)
    fail(Status::unavailable, str("NCCL collectives on rank ", g.rank()),
         "one CUDA device per rank on every host",
         e == cudaSuccess
             ? str(host.size, " ranks sharing ", ndev, " devices on this host (or fewer elsewhere)")
             : std::string(cudaGetErrorString(e)));
  std::unique_ptr<NcclGroups> n(new NcclGroups(g));
  n->device_ = host.rank;
  TAMOE_CHECK_CUDA(cudaSetDevice(n->device_));
  n->world_ = make_comm(g.world());
  n->node_ = make_comm(g.node_comm());
  n->rail_ = make_comm(g.rail_comm());
  TAMOE_LOGF(info, "coll") << "NCCL groups on device " << n->device_ << ": " << g.describe();
  return n;
}

NcclGroups::~NcclGroups() {
  for (ncclComm_t c : {world_, node_, rail_})
    if (c) ncclCommDestroy(c);
}

DeviceBuffer::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}

void* DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= n_) return p_;
  if (p_) TAMOE_CHECK_CUDA(cudaFree(p_));
  p_ = nullptr;
  n_ = 0;
  TAMOE_CHECK_CUDA(cudaMalloc(&p_, bytes));
  n_ = bytes;
  return p_;
}

std::vector<std::unique_ptr<DeviceAlgorithm>> make_device_algorithms() {
  std::vector<std::unique_ptr<DeviceAlgorithm>> v;
  v.push_back(std::make_unique<NcclFlat>());
  v.push_back(std::make_unique<NcclHier>(false));
  v.push_back(std::make_unique<NcclHier>(true));
  return v;
}

const std::vector<std::string>& DeviceAllToAll::algorithm_names() {
  static const std::vector<std::string> names = {"nccl", "hier", "hier_inter_first", "mpi",
                                                 "pairwise"};
  return names;
}

DeviceAllToAll::DeviceAllToAll(const NcclGroups& n, AllToAllOptions opts)
    : n_(n), opts_(std::move(opts)), algos_(make_device_algorithms()) {
  std::string text =
      opts_.algo.empty() ? Params::global().get_string("TAMOE_A2A_ALGO") : opts_.algo;
  spec_ = parse_algo_spec(text, algorithm_names(),
                          opts_.algo.empty() ? "TAMOE_A2A_ALGO" : "AllToAllOptions::algo");
  for (auto& r : spec_.rules)
    if (r.algo == "mpi" || r.algo == "pairwise") r.algo = "nccl";
}

DeviceAllToAll::~DeviceAllToAll() = default;

RunInfo DeviceAllToAll::choose(const CountMatrix& counts, int64_t elem_bytes) const {
  std::vector<const Algorithm*> list;
  for (auto& a : algos_) list.push_back(a.get());
  RunInfo info;
  size_t i = select_algorithm(list, groups(), counts, elem_bytes, opts_.model, spec_, &info.reason);
  info.algo = algos_[i]->name();
  return info;
}

RunInfo DeviceAllToAll::run(const CountMatrix& counts, const DeviceBuffers& b,
                            cudaStream_t stream) {
  RunInfo info = choose(counts, b.elem_bytes);
  for (auto& a : algos_)
    if (a->name() == info.algo) a->run(n_, counts, b, stream);
  return info;
}

RunInfo DeviceAllToAll::run_named(const std::string& algo, const CountMatrix& counts,
                                  const DeviceBuffers& b, cudaStream_t stream) {
  for (auto& a : algos_) {
    if (a->name() != algo) continue;
    std::string why;
    if (!a->supports(groups(), &why))
      fail(Status::invalid_argument, str("device all-to-all algorithm \"", algo, "\""),
           "a layout it supports", why);
    a->run(n_, counts, b, stream);
    return RunInfo{algo, "named"};
  }
  fail(Status::invalid_argument, "DeviceAllToAll::run_named", "nccl, hier or hier_inter_first",
       str("\"", algo, "\""));
}

}  // namespace tamoe::coll
