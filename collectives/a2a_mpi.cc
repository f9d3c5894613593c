// The host all-to-all(v) algorithms on MPI.
#include <climits>
#include <cstring>

#include "collectives/alltoallv.h"
#include "collectives/hier_plan.h"
#include "runtime/error.h"

namespace tamoe::coll {

namespace {

// An MPI datatype of one element, so counts stay in elements and fit MPI's int further.
class ElemType {
 public:
  explicit ElemType(int64_t elem_bytes) {
    if (elem_bytes <= 0 || elem_bytes > INT_MAX)
      fail(Status::invalid_argument, "all-to-all element size", "1..INT_MAX bytes",
           str(elem_bytes));
    TAMOE_CHECK_MPI(MPI_Type_contiguous(static_cast<int>(elem_bytes), MPI_BYTE, &t_));
    TAMOE_CHECK_MPI(MPI_Type_commit(&t_));
  }
  ~ElemType() { MPI_Type_free(&t_); }
  ElemType(const ElemType&) = delete;
  ElemType& operator=(const ElemType&) = delete;
  MPI_Datatype get() const { return t_; }

 private:
  MPI_Datatype t_ = MPI_DATATYPE_NULL;
};

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    fail(Status::invalid_argument, str("all-to-all ", what),
         "at most INT_MAX elements (MPI int counts)", str(v));
  return static_cast<int>(v);
}

std::vector<int> ints(const std::vector<int64_t>& v, const char* what) {
  std::vector<int> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_int(v[i], what);
  return out;
}

void alltoallv(const void* send, const std::vector<int64_t>& sc, const std::vector<int64_t>& sd,
               void* recv, const std::vector<int64_t>& rc, const std::vector<int64_t>& rd,
               MPI_Datatype t, MPI_Comm comm) {
  auto sci = ints(sc, "send count"), sdi = ints(sd, "send displacement");
  auto rci = ints(rc, "receive count"), rdi = ints(rd, "receive displacement");
  TAMOE_CHECK_MPI(
      MPI_Alltoallv(send, sci.data(), sdi.data(), t, recv, rci.data(), rdi.data(), t, comm));
}

void copy_blocks(const std::vector<CopyBlock>& blocks, const char* from, char* to, int64_t eb) {
  for (const auto& b : blocks) std::memcpy(to + b.to * eb, from + b.from * eb, b.count * eb);
}

struct Rows {
  std::vector<int64_t> sc, sd, rc, rd;
};
Rows rows(const Groups& g, const CountMatrix& C, const HostBuffers& b) {
  const int P = g.size(), me = g.rank();
  Rows r;
  r.sc.resize(P);
  r.rc.resize(P);
  for (int j = 0; j < P; ++j) {
    r.sc[j] = C.at(me, j);
    r.rc[j] = C.at(j, me);
  }
  r.sd = b.sdispls ? std::vector<int64_t>(b.sdispls, b.sdispls + P) : packed_displs(r.sc.data(), P);
  r.rd = b.rdispls ? std::vector<int64_t>(b.rdispls, b.rdispls + P) : packed_displs(r.rc.data(), P);
  return r;
}

class MpiAlltoallv final : public HostAlgorithm {
 public:
  std::string name() const override { return "mpi"; }
  bool supports(const Groups&, std::string*) const override { return true; }
  double estimate(const topo::CostModel& m, const Groups&,
                  const std::vector<double>& bytes) const override {
    return m.predict_seconds(bytes);
  }
  void run(const Groups& g, const CountMatrix& C, const HostBuffers& b) override {
    ElemType t(b.elem_bytes);
    Rows r = rows(g, C, b);
    alltoallv(b.send, r.sc, r.sd, b.recv, r.rc, r.rd, t.get(), g.world());
  }
};

// Every receive posted first, then the sends in a rotating order (rank+s), so no destination is
// hit by every rank at once; the self block is a memcpy.
class Pairwise final : public HostAlgorithm {
 public:
  std::string name() const override { return "pairwise"; }
  bool supports(const Groups&, std::string*) const override { return true; }
  double estimate(const topo::CostModel& m, const Groups&,
                  const std::vector<double>& bytes) const override {
    return m.predict_seconds(bytes);
  }
  void run(const Groups& g, const CountMatrix& C, const HostBuffers& b) override {
    const int P = g.size(), me = g.rank();
    const int64_t eb = b.elem_bytes;
    ElemType t(eb);
    Rows r = rows(g, C, b);
    reqs_.clear();
    auto* recv = static_cast<char*>(b.recv);
    const auto* send = static_cast<const char*>(b.send);
    constexpr int kTag = 0x7a2a;
    for (int s = 1; s < P; ++s) {
      int from = (me - s + P) % P;
      if (r.rc[from] == 0) continue;
      reqs_.emplace_back();
      TAMOE_CHECK_MPI(MPI_Irecv(recv + r.rd[from] * eb, to_int(r.rc[from], "receive count"),
                                t.get(), from, kTag, g.world(), &reqs_.back()));
    }
    for (int s = 1; s < P; ++s) {
      int to = (me + s) % P;
      if (r.sc[to] == 0) continue;
      reqs_.emplace_back();
      TAMOE_CHECK_MPI(MPI_Isend(send + r.sd[to] * eb, to_int(r.sc[to], "send count"), t.get(), to,
                                kTag, g.world(), &reqs_.back()));
    }
    if (r.sc[me]) std::memcpy(recv + r.rd[me] * eb, send + r.sd[me] * eb, r.sc[me] * eb);
    TAMOE_CHECK_MPI(MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE));
  }

 private:
  std::vector<MPI_Request> reqs_;
};

class Hierarchical final : public HostAlgorithm {
 public:
  explicit Hierarchical(bool inter_first) : inter_first_(inter_first) {}
  std::string name() const override { return inter_first_ ? "hier_inter_first" : "hier"; }
  bool supports(const Groups& g, std::string* why) const override { return hier_supports(g, why); }
  double estimate(const topo::CostModel& m, const Groups& g,
                  const std::vector<double>& bytes) const override {
    return hier_estimate(m, g, bytes, inter_first_);
  }
  void run(const Groups& g, const CountMatrix& C, const HostBuffers& b) override {
    std::string why;
    if (!hier_supports(g, &why))
      fail(Status::invalid_argument, str("all-to-all ", name()), "a uniform layout", why);
    const int64_t eb = b.elem_bytes;
    ElemType t(eb);
    HierPlan p = make_hier_plan(g, C, b.sdispls, b.rdispls, inter_first_);
    // Scratch kept between calls: steady-state MoE steps reuse the same sizes.
    if (static_cast<int64_t>(a_.size()) < p.stage_a * eb) a_.resize(p.stage_a * eb);
    if (static_cast<int64_t>(b_.size()) < p.stage_b * eb) b_.resize(p.stage_b * eb);
    MPI_Comm c1 = inter_first_ ? g.rail_comm() : g.node_comm();
    MPI_Comm c2 = inter_first_ ? g.node_comm() : g.rail_comm();
    copy_blocks(p.pack1, static_cast<const char*>(b.send), a_.data(), eb);
    alltoallv(a_.data(), p.send1_counts, p.send1_displs, b_.data(), p.recv1_counts, p.recv1_displs,
              t.get(), c1);
    copy_blocks(p.pack2, b_.data(), a_.data(), eb);
    alltoallv(a_.data(), p.send2_counts, p.send2_displs, b_.data(), p.recv2_counts, p.recv2_displs,
              t.get(), c2);
    copy_blocks(p.unpack, b_.data(), static_cast<char*>(b.recv), eb);
  }

 private:
  bool inter_first_;
  std::vector<char> a_, b_;
};

}  // namespace

std::vector<std::unique_ptr<HostAlgorithm>> make_host_algorithms() {
  std::vector<std::unique_ptr<HostAlgorithm>> v;
  v.push_back(std::make_unique<MpiAlltoallv>());
  v.push_back(std::make_unique<Pairwise>());
  v.push_back(std::make_unique<Hierarchical>(false));
  v.push_back(std::make_unique<Hierarchical>(true));
  return v;
}

}  // namespace tamoe::coll
