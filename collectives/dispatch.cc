#include "collectives/dispatch.h"

#include <cstring>

#include "collectives/hier_plan.h"
#include "runtime/error.h"

namespace tamoe::coll {

namespace {

// Element access with the accumulation type of each dtype (bf16 is stored as uint16_t).
template <typename T>
struct Elem {
  using Acc = T;
  static Acc load(const T* p, int64_t i) { return p[i]; }
  static void store(T* p, int64_t i, Acc v) { p[i] = v; }
};
template <>
struct Elem<uint16_t> {
  using Acc = float;
  static Acc load(const uint16_t* p, int64_t i) { return bf16_to_float(p[i]); }
  static void store(uint16_t* p, int64_t i, Acc v) { p[i] = float_to_bf16(v); }
};

template <typename F>
void with_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32:
      f(float{});
      return;
    case DType::f64:
      f(double{});
      return;
    case DType::bf16:
      f(uint16_t{});
      return;
  }
  fail(Status::invalid_argument, "dispatch dtype", "f32, f64 or bf16", str(static_cast<int>(t)));
}

void check_hidden(int64_t hidden, const char* where) {
  if (hidden <= 0) fail(Status::invalid_argument, where, "hidden > 0", str(hidden));
}

}  // namespace

void check_routing_input(const Groups& g, const int32_t* expert_ids, const DispatchShape& shape,
                         const char* who) {
  const int P = g.size();
  const int E = shape.experts_per_rank;
  std::string mine;
  if (shape.tokens < 0 || shape.k < 1 || E < 1) {
    mine = str(who, " on rank ", g.rank(), ": expected tokens >= 0, k >= 1, experts_per_rank >= 1",
               ", found tokens=", shape.tokens, " k=", shape.k, " experts_per_rank=", E);
  } else {
    const int64_t nexperts = static_cast<int64_t>(P) * E;
    for (int64_t s = 0; s < shape.tokens * shape.k && mine.empty(); ++s)
      if (expert_ids[s] < -1 || expert_ids[s] >= nexperts)
        mine = str(who, ": expert_ids[", s, "] (token ", s / shape.k, ", slot ", s % shape.k,
                   ") on rank ", g.rank(), ": expected -1 (dropped) or a global expert id in [0, ",
                   nexperts, "), found ", expert_ids[s]);
  }
  int bad[3] = {mine.empty() ? P : g.rank(), E, -E};  // MIN: first bad rank, min E, max E
  TAMOE_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, bad, 3, MPI_INT, MPI_MIN, g.world()));
  if (!mine.empty()) throw Error(Status::invalid_argument, mine);
  if (bad[0] < P)
    fail(Status::invalid_argument, str(who, " on rank ", g.rank()),
         "valid routing input on every rank",
         str("bad input on rank ", bad[0], " (its error names the slot)"));
  if (bad[1] != -bad[2])
    fail(Status::mismatch, str(who, " on rank ", g.rank()),
         "the same experts_per_rank on every rank", str("values from ", bad[1], " to ", -bad[2]));
}

HostDispatch HostDispatch::create(AllToAll& a2a, const int32_t* expert_ids,
                                  const DispatchShape& shape) {
  const Groups& g = a2a.groups();
  const int P = g.size();
  const int E = shape.experts_per_rank;
  check_routing_input(g, expert_ids, shape, "HostDispatch::create");
  HostDispatch h(a2a);
  h.shape_ = shape;
  h.P_ = P;
  const int64_t slots = shape.tokens * shape.k;
  std::vector<int64_t> send_de(static_cast<size_t>(P) * E, 0);
  for (int64_t s = 0; s < slots; ++s)
    if (expert_ids[s] >= 0) send_de[expert_ids[s]]++;  // id == dest * E + local expert
  std::vector<int64_t> off = packed_displs(send_de.data(), P * E);
  h.slot_row_.assign(slots, -1);
  for (int64_t s = 0; s < slots; ++s)
    if (expert_ids[s] >= 0) h.slot_row_[s] = off[expert_ids[s]]++;
  h.dc_ = exchange_dispatch_counts(g, send_de, E);
  return h;
}

DispatchCounts exchange_dispatch_counts(const Groups& g, const std::vector<int64_t>& send_de,
                                        int E) {
  const int P = g.size();
  DispatchCounts dc;
  std::vector<int64_t> recv_se(static_cast<size_t>(P) * E);
  TAMOE_CHECK_MPI(
      MPI_Alltoall(send_de.data(), E, MPI_INT64_T, recv_se.data(), E, MPI_INT64_T, g.world()));
  std::vector<int64_t> send_tot(P, 0), recv_tot(P, 0);
  for (int d = 0; d < P; ++d)
    for (int e = 0; e < E; ++e) {
      send_tot[d] += send_de[d * E + e];
      recv_tot[d] += recv_se[d * E + e];
    }
  dc.counts = exchange_counts(g, send_tot.data(), recv_tot.data());
  dc.counts_t.P = P;
  dc.counts_t.c.resize(dc.counts.c.size());
  for (int i = 0; i < P; ++i)
    for (int j = 0; j < P; ++j) dc.counts_t.c[static_cast<size_t>(j) * P + i] = dc.counts.at(i, j);
  for (int64_t v : send_tot) dc.send_rows += v;
  for (int64_t v : recv_tot) dc.recv_rows += v;
  dc.recv_se_off = packed_displs(recv_se.data(), P * E);
  dc.recv_es.resize(static_cast<size_t>(E) * P);
  for (int e = 0; e < E; ++e)
    for (int s = 0; s < P; ++s) dc.recv_es[e * P + s] = recv_se[s * E + e];
  dc.recv_es_off = packed_displs(dc.recv_es.data(), E * P);
  return dc;
}

int64_t HostDispatch::expert_rows(int e) const {
  int64_t n = 0;
  for (int s = 0; s < P_; ++s) n += dc_.recv_es.at(static_cast<size_t>(e) * P_ + s);
  return n;
}

void HostDispatch::forward_rows(const char* send_rows, int64_t row_bytes, char* expert_rows) {
  const int E = shape_.experts_per_rank;
  stage_.resize(dc_.recv_rows * row_bytes);
  last_ = a2a_->run(dc_.counts, HostBuffers{send_rows, stage_.data(), row_bytes, nullptr, nullptr});
  for (int s = 0; s < P_; ++s)
    for (int e = 0; e < E; ++e)
      if (int64_t n = dc_.recv_es[e * P_ + s])
        std::memcpy(expert_rows + dc_.recv_es_off[e * P_ + s] * row_bytes,
                    stage_.data() + dc_.recv_se_off[s * E + e] * row_bytes, n * row_bytes);
}

void HostDispatch::reverse_rows(const char* expert_rows, int64_t row_bytes, char* send_rows) {
  const int E = shape_.experts_per_rank;
  stage_.resize(dc_.recv_rows * row_bytes);
  for (int s = 0; s < P_; ++s)
    for (int e = 0; e < E; ++e)
      if (int64_t n = dc_.recv_es[e * P_ + s])
        std::memcpy(stage_.data() + dc_.recv_se_off[s * E + e] * row_bytes,
                    expert_rows + dc_.recv_es_off[e * P_ + s] * row_bytes, n * row_bytes);
  last_ =
      a2a_->run(dc_.counts_t, HostBuffers{stage_.data(), send_rows, row_bytes, nullptr, nullptr});
}

void HostDispatch::dispatch(const void* x, int64_t hidden, DType dtype, void* recv) {
  check_hidden(hidden, "HostDispatch::dispatch hidden");
  const int64_t rb = hidden * dtype_bytes(dtype);
  std::vector<char> send(dc_.send_rows * rb);
  const auto* xs = static_cast<const char*>(x);
  for (int64_t s = 0; s < static_cast<int64_t>(slot_row_.size()); ++s)
    if (slot_row_[s] >= 0)
      std::memcpy(send.data() + slot_row_[s] * rb, xs + (s / shape_.k) * rb, rb);
  forward_rows(send.data(), rb, static_cast<char*>(recv));
}

void HostDispatch::combine(const void* y, const float* weights, int64_t hidden, DType dtype,
                           void* out) {
  check_hidden(hidden, "HostDispatch::combine hidden");
  const int64_t rb = hidden * dtype_bytes(dtype);
  returned_.resize(dc_.send_rows * rb);
  reverse_rows(static_cast<const char*>(y), rb, returned_.data());
  returned_hidden_ = hidden;
  returned_dtype_ = dtype;
  const int k = shape_.k;
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Elem<T>::Acc;
    const T* r = reinterpret_cast<const T*>(returned_.data());
    T* o = static_cast<T*>(out);
    std::vector<A> acc(hidden);
    for (int64_t t = 0; t < shape_.tokens; ++t) {
      std::fill(acc.begin(), acc.end(), A(0));
      for (int i = 0; i < k; ++i) {
        int64_t row = slot_row_[t * k + i];
        if (row < 0) continue;
        A w = static_cast<A>(weights[t * k + i]);
        for (int64_t c = 0; c < hidden; ++c) acc[c] += w * Elem<T>::load(r, row * hidden + c);
      }
      for (int64_t c = 0; c < hidden; ++c) Elem<T>::store(o, t * hidden + c, acc[c]);
    }
  });
}

void HostDispatch::dispatch_backward(const void* grad_recv, int64_t hidden, DType dtype,
                                     void* grad_x) {
  check_hidden(hidden, "HostDispatch::dispatch_backward hidden");
  const int64_t rb = hidden * dtype_bytes(dtype);
  std::vector<char> back(dc_.send_rows * rb);
  reverse_rows(static_cast<const char*>(grad_recv), rb, back.data());
  const int k = shape_.k;
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Elem<T>::Acc;
    const T* r = reinterpret_cast<const T*>(back.data());
    T* o = static_cast<T*>(grad_x);
    std::vector<A> acc(hidden);
    for (int64_t t = 0; t < shape_.tokens; ++t) {
      std::fill(acc.begin(), acc.end(), A(0));
      for (int i = 0; i < k; ++i)
        if (int64_t row = slot_row_[t * k + i]; row >= 0)
          for (int64_t c = 0; c < hidden; ++c) acc[c] += Elem<T>::load(r, row * hidden + c);
      for (int64_t c = 0; c < hidden; ++c) Elem<T>::store(o, t * hidden + c, acc[c]);
    }
  });
}

void HostDispatch::combine_backward(const void* grad_out, const float* weights, int64_t hidden,
                                    DType dtype, void* grad_y, float* grad_weights) {
  if (returned_hidden_ != hidden || returned_dtype_ != dtype)
    fail(Status::invalid_argument, "HostDispatch::combine_backward",
         str("a combine with hidden ", hidden, " and dtype ", dtype_name(dtype), " before"),
         returned_hidden_ < 0
             ? std::string("no combine")
             : str("hidden ", returned_hidden_, ", ", dtype_name(returned_dtype_)));
  const int64_t rb = hidden * dtype_bytes(dtype);
  std::vector<char> send(dc_.send_rows * rb);
  const int k = shape_.k;
  with_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename Elem<T>::Acc;
    const T* go = static_cast<const T*>(grad_out);
    const T* r = reinterpret_cast<const T*>(returned_.data());
    T* s = reinterpret_cast<T*>(send.data());
    for (int64_t t = 0; t < shape_.tokens; ++t)
      for (int i = 0; i < k; ++i) {
        int64_t row = slot_row_[t * k + i];
        if (row < 0) {
          grad_weights[t * k + i] = 0;
          continue;
        }
        A w = static_cast<A>(weights[t * k + i]);
        A dot = 0;
        for (int64_t c = 0; c < hidden; ++c) {
          A g = Elem<T>::load(go, t * hidden + c);
          Elem<T>::store(s, row * hidden + c, w * g);
          dot += g * Elem<T>::load(r, row * hidden + c);
        }
        grad_weights[t * k + i] = static_cast<float>(dot);
      }
  });
  forward_rows(send.data(), rb, static_cast<char*>(grad_y));
}

}  // namespace tamoe::coll
