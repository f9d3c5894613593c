// Measuring side of tamoe-bench-dispatch: one point = (hidden, k, dtype, pattern).
//
// Per point, on every rank: routing from make_routing, a check pass (outputs poisoned first),
// `warmup + iters` timed iterations of five operations interleaved (so background load hits all
// alike), a second check of what the last timed iteration left, then the kernels alone.
//   dispatch_full  DeviceDispatch::update (layout kernel, id check, count exchange) + dispatch
//   dispatch       dispatch with the layout known (permute + all-to-all + expert-major reorder)
//   combine        combine (reorder back + all-to-all + un-permute weighted sum)
//   nccl_dispatch  grouped ncclSend/ncclRecv of exactly the bytes dispatch moves per peer, from
//                  pre-laid-out buffers (no permutation); nccl_combine the reverse direction.
// Times are host wall clock from a barrier to cudaStreamSynchronize, max over ranks.
#include <cuda_runtime.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "bench/collectives/bench_dispatch.h"
#include "bench/common/bench_util.h"
#include "collectives/dispatch_device.h"
#include "kernels/permute.h"
#include "runtime/error.h"

namespace tamoe::bench {

using namespace tamoe::coll;

namespace {

// Element bits on the host; U's width names the dtype (2: bf16, 4: f32, 8: f64).
template <typename U>
U encode(double v) {
  if constexpr (sizeof(U) == 2) {
    return float_to_bf16(static_cast<float>(v));
  } else if constexpr (sizeof(U) == 4) {
    float f = static_cast<float>(v);
    U u;
    std::memcpy(&u, &f, 4);
    return u;
  } else {
    U u;
    std::memcpy(&u, &v, 8);
    return u;
  }
}
template <typename U>
double decode(U u) {
  if constexpr (sizeof(U) == 2) {
    return bf16_to_float(u);
  } else if constexpr (sizeof(U) == 4) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  } else {
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
}

// Encoded small integers v in [-96, 95] at index v + 96.
template <typename U>
std::vector<U> int_table() {
  std::vector<U> tab(192);
  for (int v = -96; v < 96; ++v) tab[v + 96] = encode<U>(v);
  return tab;
}

uint32_t word(int src, int dst, int64_t idx) {
  uint64_t h = (static_cast<uint64_t>(src) << 40) ^ (static_cast<uint64_t>(dst) << 20) ^
               static_cast<uint64_t>(idx);
  h *= 0x9E3779B97F4A7C15ull;
  return static_cast<uint32_t>(h >> 32);
}

void nccl_exchange(ncclComm_t comm, const char* send, const std::vector<int64_t>& sbytes,
                   char* recv, const std::vector<int64_t>& rbytes, cudaStream_t st) {
  const int P = static_cast<int>(sbytes.size());
  auto sd = packed_displs(sbytes.data(), P), rd = packed_displs(rbytes.data(), P);
  TAMOE_CHECK_NCCL(ncclGroupStart());
  for (int p = 0; p < P; ++p) {
    if (rbytes[p])
      TAMOE_CHECK_NCCL(
          ncclRecv(recv + rd[p], static_cast<size_t>(rbytes[p]), ncclChar, p, comm, st));
    if (sbytes[p])
      TAMOE_CHECK_NCCL(
          ncclSend(send + sd[p], static_cast<size_t>(sbytes[p]), ncclChar, p, comm, st));
  }
  TAMOE_CHECK_NCCL(ncclGroupEnd());
}

template <typename T>
T* as(DeviceBuffer& b) {
  return static_cast<T*>(b.get());
}

// Everything one point needs on the host to build inputs and check outputs.
struct Reference {
  int P = 1, me = 0, E = 1, k = 1;
  int64_t T = 0, H = 0;
  std::vector<int32_t> all_ids;  // [P][T*k]
  std::vector<float> weights;    // this rank [T*k]
  // rows this rank receives, in [local expert][source rank][slot] order: (source, token, expert)
  std::vector<int64_t> recv_src, recv_tok;
  std::vector<int32_t> recv_exp;
  std::vector<int64_t> expert_counts;  // [e * P + s]
};

Reference make_reference(const Groups& g, const DispatchOptions& o, const DispatchCase& c,
                         const std::string& pattern) {
  Reference r;
  r.P = g.size();
  r.me = g.rank();
  r.E = o.experts_per_rank;
  r.k = c.k;
  r.T = o.tokens;
  r.H = c.hidden;
  const int64_t slots = r.T * r.k;
  std::vector<int32_t> ids;
  make_routing(pattern, o.zipf_s, o.seed, r.me, r.T, r.k, r.P * r.E, &ids, &r.weights);
  r.all_ids.resize(static_cast<size_t>(slots) * r.P);
  TAMOE_CHECK_MPI(MPI_Allgather(ids.data(), static_cast<int>(slots), MPI_INT32_T, r.all_ids.data(),
                                static_cast<int>(slots), MPI_INT32_T, g.world()));
  std::vector<std::vector<int64_t>> bucket(static_cast<size_t>(r.E) * r.P);  // [e * P + s]: slots
  for (int s = 0; s < r.P; ++s)
    for (int64_t q = 0; q < slots; ++q) {
      int32_t id = r.all_ids[static_cast<size_t>(s) * slots + q];
      if (id >= 0 && id / r.E == r.me) bucket[static_cast<size_t>(id % r.E) * r.P + s].push_back(q);
    }
  r.expert_counts.resize(bucket.size());
  for (int e = 0; e < r.E; ++e)
    for (int s = 0; s < r.P; ++s) {
      const auto& b = bucket[static_cast<size_t>(e) * r.P + s];
      r.expert_counts[static_cast<size_t>(e) * r.P + s] = static_cast<int64_t>(b.size());
      for (int64_t q : b) {
        r.recv_src.push_back(s);
        r.recv_tok.push_back(q / r.k);
        r.recv_exp.push_back(r.me * r.E + e);
      }
    }
  return r;
}

// Host data and the two checks (dispatch layout exact, combine within rounding).
template <typename U>
struct Checker {
  DType t;
  const Reference& r;
  std::vector<U> tab = int_table<U>();

  std::vector<U> x(uint64_t salt) const {
    std::vector<U> v(static_cast<size_t>(r.T * r.H));
    for (int64_t tk = 0; tk < r.T; ++tk) {
      uint64_t h = row_hash(r.me, tk, salt);
      for (int64_t c = 0; c < r.H; ++c) v[tk * r.H + c] = tab[xval(h, c) + 96];
    }
    return v;
  }
  // Expert outputs of the stand-in expert: y = x + expert_offset, in the received layout.
  std::vector<U> y(uint64_t salt) const {
    std::vector<U> v(r.recv_tok.size() * static_cast<size_t>(r.H));
    for (size_t i = 0; i < r.recv_tok.size(); ++i) {
      uint64_t h = row_hash(static_cast<int>(r.recv_src[i]), r.recv_tok[i], salt);
      int off = expert_offset(r.recv_exp[i]);
      for (int64_t c = 0; c < r.H; ++c) v[i * r.H + c] = tab[xval(h, c) + off + 96];
    }
    return v;
  }
  int64_t check_recv(const std::vector<U>& got, uint64_t salt) const {
    int64_t wrong = 0;
    for (size_t i = 0; i < r.recv_tok.size(); ++i) {
      uint64_t h = row_hash(static_cast<int>(r.recv_src[i]), r.recv_tok[i], salt);
      const U* row = got.data() + i * r.H;
      for (int64_t c = 0; c < r.H; ++c) wrong += row[c] != tab[xval(h, c) + 96];
    }
    return wrong;
  }
  // out[t] = sum_i w[t,i] * (x[t] + expert_offset(id[t,i])), reference in double.
  int64_t check_out(const std::vector<U>& got, uint64_t salt) const {
    const double rel = t == DType::bf16 ? 1.0 / 256 : t == DType::f32 ? 1e-6 : 1e-13;
    const double abs_rel = t == DType::bf16 ? 1e-5 : rel;
    const int32_t* ids = r.all_ids.data() + static_cast<size_t>(r.me) * r.T * r.k;
    int64_t wrong = 0;
    for (int64_t tk = 0; tk < r.T; ++tk) {
      uint64_t h = row_hash(r.me, tk, salt);
      for (int64_t c = 0; c < r.H; ++c) {
        const int v = xval(h, c);
        double ref = 0, mag = 0;
        for (int i = 0; i < r.k; ++i) {
          const int32_t id = ids[tk * r.k + i];
          if (id < 0) continue;
          const double term =
              static_cast<double>(r.weights[tk * r.k + i]) * (v + expert_offset(id));
          ref += term;
          mag += std::fabs(term);
        }
        const double d = decode(got[tk * r.H + c]);
        wrong += !(std::fabs(d - ref) <= rel * std::fabs(ref) + abs_rel * mag);
      }
    }
    return wrong;
  }
};

template <typename U>
std::vector<U> download(const void* p, size_t n) {
  std::vector<U> v(n);
  if (n) TAMOE_CHECK_CUDA(cudaMemcpy(v.data(), p, n * sizeof(U), cudaMemcpyDeviceToHost));
  return v;
}
template <typename U>
void upload(void* p, const std::vector<U>& v) {
  if (!v.empty())
    TAMOE_CHECK_CUDA(cudaMemcpy(p, v.data(), v.size() * sizeof(U), cudaMemcpyHostToDevice));
}

template <typename U>
PointResult measure_typed(const NcclGroups& n, const DispatchOptions& o, const DispatchCase& c,
                          DType dt, const std::string& pattern) {
  const Groups& g = n.groups();
  const Reference r = make_reference(g, o, c, pattern);
  const Checker<U> chk{dt, r};
  const int P = r.P, me = r.me, N = P * r.E;
  const int64_t T = r.T, H = r.H, slots = T * r.k, rb = H * dtype_bytes(dt);
  const uint64_t salt = o.seed * 1000003u + static_cast<uint64_t>(c.hidden * 31 + c.k);

  cudaStream_t st = nullptr;
  TAMOE_CHECK_CUDA(cudaStreamCreate(&st));
  DeviceBuffer ids_d, w_d, x_d, y_d, recv_d, out_d;
  const int32_t* my_ids = r.all_ids.data() + static_cast<size_t>(me) * slots;
  upload(ids_d.reserve(std::max<int64_t>(1, slots) * 4),
         std::vector<int32_t>(my_ids, my_ids + slots));
  upload(w_d.reserve(std::max<int64_t>(1, slots) * 4), r.weights);
  const int64_t recv_rows = static_cast<int64_t>(r.recv_tok.size());
  upload(x_d.reserve(std::max<int64_t>(1, T * rb)), chk.x(salt));
  upload(y_d.reserve(std::max<int64_t>(1, recv_rows * rb)), chk.y(salt));
  recv_d.reserve(std::max<int64_t>(1, recv_rows * rb));
  out_d.reserve(std::max<int64_t>(1, T * rb));

  PointResult res;
  res.c = c;
  res.dtype = dt;
  res.pattern = pattern;
  res.recv_rows = recv_rows;
  const char* names[] = {"dispatch_full", "dispatch", "combine", "nccl_dispatch", "nccl_combine"};
  const char* vs[] = {"nccl_dispatch", "nccl_dispatch", "nccl_combine", "", ""};
  for (int i = 0; i < 5; ++i) {
    OpRow row;
    row.op = names[i];
    row.vs = vs[i];
    res.ops.push_back(row);
  }
  OpRow &full = res.ops[0], &disp = res.ops[1], &comb = res.ops[2], &ndisp = res.ops[3],
        &ncomb = res.ops[4];

  // Per-peer bytes of both directions, from the routing alone (not from the handle).
  std::vector<int64_t> sbytes(P, 0), rbytes(P, 0);
  for (int64_t q = 0; q < slots; ++q)
    if (my_ids[q] >= 0) sbytes[my_ids[q] / r.E] += rb;
  for (int s = 0; s < P; ++s)
    for (int e = 0; e < r.E; ++e) rbytes[s] += r.expert_counts[static_cast<size_t>(e) * P + s] * rb;
  int64_t send_bytes = 0, recv_bytes = 0;
  for (int p = 0; p < P; ++p) {
    send_bytes += sbytes[p];
    recv_bytes += rbytes[p];
  }
  res.send_rows = send_bytes / rb;

  // Check pass, outputs poisoned (all-ones bits are NaN in every dtype).
  AllToAllOptions ao;
  ao.algo = o.algo;
  DeviceAllToAll a2a(n, ao);
  TAMOE_CHECK_CUDA(cudaMemset(recv_d.get(), 0xff, recv_d.bytes()));
  TAMOE_CHECK_CUDA(cudaMemset(out_d.get(), 0xff, out_d.bytes()));
  auto h = DeviceDispatch::create(a2a, as<int32_t>(ids_d), DispatchShape{T, r.k, r.E}, st);
  int64_t layout_wrong = 0;
  if (h->recv_rows() != recv_rows || h->expert_counts() != r.expert_counts)
    layout_wrong = recv_rows * H;  // the handle disagrees with the host's layout: all wrong
  h->dispatch(x_d.get(), H, dt, recv_d.get(), st);
  h->combine(y_d.get(), as<float>(w_d), H, dt, out_d.get(), st);
  TAMOE_CHECK_CUDA(cudaStreamSynchronize(st));
  // After a dispatch: last_run() names the algorithm that ran.
  res.path = h->last_run().algo != "nccl" ? h->last_run().algo + " (staged)"
             : h->direct_blocks(rb)       ? "direct"
                                          : "staged";
  full.wrong += layout_wrong + chk.check_recv(download<U>(recv_d.get(), recv_rows * H), salt);
  full.checked += recv_rows * H;
  comb.wrong += chk.check_out(download<U>(out_d.get(), T * H), salt);
  comb.checked += T * H;

  // NCCL's own buffers, laid out per peer already; 4-byte words of a known pattern.
  DeviceBuffer ns_d, nr_d;
  std::vector<uint32_t> ns_h(static_cast<size_t>(send_bytes / 4));
  {
    int64_t wpos = 0;
    for (int p = 0; p < P; ++p)
      for (int64_t i = 0; i < sbytes[p] / 4; ++i) ns_h[wpos++] = word(me, p, i);
  }
  upload(ns_d.reserve(std::max<int64_t>(1, send_bytes)), ns_h);
  TAMOE_CHECK_CUDA(cudaMemset(nr_d.reserve(std::max<int64_t>(1, recv_bytes)), 0xff,
                              std::max<int64_t>(1, recv_bytes)));
  char* nsp = as<char>(ns_d);
  char* nrp = as<char>(nr_d);

  auto timed = [&](OpRow& row, bool keep, auto&& fn) {
    TAMOE_CHECK_MPI(MPI_Barrier(g.world()));
    const double t0 = MPI_Wtime();
    fn();
    TAMOE_CHECK_CUDA(cudaStreamSynchronize(st));
    const double t = MPI_Wtime() - t0;
    if (keep) row.seconds.push_back(t);
  };
  for (int it = 0; it < o.warmup + o.iters; ++it) {
    const bool keep = it >= o.warmup;
    timed(full, keep, [&] {
      h->update(as<int32_t>(ids_d), DispatchShape{T, r.k, r.E}, st);
      h->dispatch(x_d.get(), H, dt, recv_d.get(), st);
    });
    timed(disp, keep, [&] { h->dispatch(x_d.get(), H, dt, recv_d.get(), st); });
    timed(comb, keep, [&] { h->combine(y_d.get(), as<float>(w_d), H, dt, out_d.get(), st); });
    timed(ndisp, keep, [&] { nccl_exchange(n.world(), nsp, sbytes, nrp, rbytes, st); });
    // The reverse direction returns every block to where it came from, so ns_d keeps its pattern.
    timed(ncomb, keep, [&] { nccl_exchange(n.world(), nrp, rbytes, nsp, sbytes, st); });
  }
  // Second check: what the last timed iterations left.
  disp.wrong += chk.check_recv(download<U>(recv_d.get(), recv_rows * H), salt);
  disp.checked += recv_rows * H;
  comb.wrong += chk.check_out(download<U>(out_d.get(), T * H), salt);
  comb.checked += T * H;
  {
    auto got = download<uint32_t>(nrp, static_cast<size_t>(recv_bytes / 4));
    int64_t wpos = 0, bad = 0;
    for (int s = 0; s < P; ++s)
      for (int64_t i = 0; i < rbytes[s] / 4; ++i) bad += got[wpos++] != word(s, me, i);
    ndisp.wrong += bad;
    ndisp.checked += recv_bytes / 4;
    got = download<uint32_t>(nsp, ns_h.size());
    bad = 0;
    for (size_t i = 0; i < got.size(); ++i) bad += got[i] != ns_h[i];
    ncomb.wrong += bad;
    ncomb.checked += static_cast<int64_t>(got.size());
  }
  for (auto& row : res.ops) {
    if (!row.seconds.empty())
      TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, row.seconds.data(),
                                    static_cast<int>(row.seconds.size()), MPI_DOUBLE, MPI_MAX,
                                    g.world()));
    int64_t v[2] = {row.wrong, row.checked};
    TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT64_T, MPI_SUM, g.world()));
    row.wrong = v[0];
    row.checked = v[1];
  }
  double most[2] = {static_cast<double>(send_bytes), static_cast<double>(recv_bytes)};
  TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, most, 2, MPI_DOUBLE, MPI_MAX, g.world()));
  full.size_bytes = disp.size_bytes = ndisp.size_bytes = most[0];
  comb.size_bytes = ncomb.size_bytes = most[1];
  h.reset();  // its buffers go before the kernels' own

  // The kernels alone on this rank, device events around each launch.
  DeviceBuffer slot_d, cnt_d, work_d, ksend_d, kout_d, kre_d, blk_d;
  auto* slot_row = static_cast<int64_t*>(slot_d.reserve(std::max<int64_t>(1, slots) * 8));
  auto* cnt = static_cast<int64_t*>(cnt_d.reserve(static_cast<size_t>(N) * 8));
  void* work = work_d.reserve(kernels::permute_slots_workspace_bytes(N));
  void* ksend = ksend_d.reserve(std::max<int64_t>(1, send_bytes));
  void* kre = kre_d.reserve(std::max<int64_t>(1, send_bytes));
  void* kout = kout_d.reserve(std::max<int64_t>(1, T * rb));
  TAMOE_CHECK_CUDA(kernels::permute_slots(as<int32_t>(ids_d), slots, N, slot_row, cnt, work, st));
  // Reorder: the N expert blocks of the send layout written in reverse expert order.
  std::vector<int64_t> ecount(N, 0);
  for (int64_t q = 0; q < slots; ++q)
    if (my_ids[q] >= 0) ecount[my_ids[q]]++;
  std::vector<int64_t> lists(3 * static_cast<size_t>(N));
  auto from = packed_displs(ecount.data(), N);
  for (int b = 0; b < N; ++b) {
    lists[b] = from[b];
    lists[2 * N + b] = ecount[b];
  }
  for (int b = N - 1, to = 0; b >= 0; --b) {
    lists[N + b] = to;
    to += static_cast<int>(ecount[b]);
  }
  auto* blk = static_cast<int64_t*>(blk_d.reserve(lists.size() * 8));
  upload(blk, lists);
  const int64_t kept = send_bytes / rb;
  res.kernels = {{"permute_slots", static_cast<double>(slots) * (4 + 8) + N * 8.0, {}},
                 {"permute_rows", static_cast<double>(T * rb + kept * rb + slots * 8), {}},
                 {"unpermute_combine", static_cast<double>(kept * rb + slots * 12 + T * rb), {}},
                 {"reorder", 2.0 * static_cast<double>(kept * rb) + 3.0 * N * 8, {}}};
  cudaEvent_t a, b;
  TAMOE_CHECK_CUDA(cudaEventCreate(&a));
  TAMOE_CHECK_CUDA(cudaEventCreate(&b));
  for (int it = 0; it < 3 + o.kernel_iters; ++it)
    for (auto& kr : res.kernels) {
      TAMOE_CHECK_CUDA(cudaEventRecord(a, st));
      if (kr.kernel == "permute_slots")
        TAMOE_CHECK_CUDA(
            kernels::permute_slots(as<int32_t>(ids_d), slots, N, slot_row, cnt, work, st));
      else if (kr.kernel == "permute_rows")
        TAMOE_CHECK_CUDA(kernels::permute_rows(x_d.get(), slot_row, T, r.k, rb, ksend, st));
      else if (kr.kernel == "unpermute_combine")
        TAMOE_CHECK_CUDA(kernels::unpermute_combine(ksend, slot_row, as<float>(w_d), T, r.k, H,
                                                    static_cast<int>(dt), kout, st));
      else
        TAMOE_CHECK_CUDA(
            kernels::copy_row_blocks(ksend, kre, blk, blk + N, blk + 2 * N, N, rb, st));
      TAMOE_CHECK_CUDA(cudaEventRecord(b, st));
      TAMOE_CHECK_CUDA(cudaEventSynchronize(b));
      float ms = 0;
      TAMOE_CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
      if (it >= 3) kr.seconds.push_back(ms * 1e-3);
    }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  TAMOE_CHECK_CUDA(cudaStreamSynchronize(st));
  cudaStreamDestroy(st);
  return res;
}

}  // namespace

PointResult measure_point(const NcclGroups& n, const DispatchOptions& o, const DispatchCase& c,
                          DType dtype, const std::string& pattern) {
  switch (dtype) {
    case DType::bf16:
      return measure_typed<uint16_t>(n, o, c, dtype, pattern);
    case DType::f32:
      return measure_typed<uint32_t>(n, o, c, dtype, pattern);
    case DType::f64:
      return measure_typed<uint64_t>(n, o, c, dtype, pattern);
  }
  fail(Status::invalid_argument, "tamoe-bench-dispatch --dtypes", "bf16, f32 or f64",
       dtype_name(dtype));
}

double copy_bw_gbps(size_t bytes, int iters) {
  DeviceBuffer src, dst;
  TAMOE_CHECK_CUDA(cudaMemset(src.reserve(bytes), 1, bytes));
  dst.reserve(bytes);
  cudaEvent_t a, b;
  TAMOE_CHECK_CUDA(cudaEventCreate(&a));
  TAMOE_CHECK_CUDA(cudaEventCreate(&b));
  TAMOE_CHECK_CUDA(cudaMemcpy(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice));
  std::vector<double> s;
  for (int i = 0; i < iters; ++i) {
    TAMOE_CHECK_CUDA(cudaEventRecord(a));
    TAMOE_CHECK_CUDA(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice));
    TAMOE_CHECK_CUDA(cudaEventRecord(b));
    TAMOE_CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    TAMOE_CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    s.push_back(ms * 1e-3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  const double t = percentile(s, 0.5);
  return t > 0 ? 2.0 * static_cast<double>(bytes) / t / 1e9 : 0;
}

}  // namespace tamoe::bench
