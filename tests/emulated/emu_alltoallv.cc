// Emulated-cluster check (run by scripts/emu/cluster.sh across network-namespace nodes):
// 1. tamoe's topology grouping sees one host per namespace node (own hostname, own shared
//    memory), with the expected ranks per node;
// 2. a real MPI_Alltoallv across the nodes delivers every byte: each byte is coded with its
//    source rank, destination rank and position, counts differ per pair;
// 3. the inter-node link is really shaped: a large cross-node transfer is not faster than the
//    configured rate allows (when --rate-mbit is given).
// All ranks agree on the verdict (MPI_Allreduce); rank 0 prints; non-zero exit on any failure.
//
//   cluster.sh run 2 1gbit --slots 2 -- -np 4 tamoe_emu_alltoallv --nodes 2 --rate-mbit 1000
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "topology/cluster.h"

namespace {

int g_rank = 0;
int g_failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "rank %d: FAILED: %s\n", g_rank, what.c_str());
  }
}

// Bytes from `src` to `dst`: different for every pair and large enough (tens of KiB) to span
// many TCP segments, so partial or misrouted deliveries show up.
int pair_bytes(int src, int dst, int iter) {
  return 40000 + 997 * src + 1301 * dst + 113 * iter;
}

uint8_t code(int src, int dst, int i, int iter) {
  return static_cast<uint8_t>((src * 31 + dst * 17 + i * 7 + (i >> 8) * 13 + iter * 5) & 0xff);
}

void check_topology(const tamoe::topo::Cluster& c, int want_nodes, int P) {
  check(c.nhosts() == want_nodes,
        "nhosts() == " + std::to_string(want_nodes) + ", found " + std::to_string(c.nhosts()));
  check(c.nnodes() == want_nodes,
        "nnodes() == " + std::to_string(want_nodes) + ", found " + std::to_string(c.nnodes()));
  check(c.uniform() && c.local_size() * want_nodes == P,
        "uniform nodes of " + std::to_string(P / want_nodes) + " ranks, found local_size " +
            std::to_string(c.local_size()));
  // Hostnames: equal within a node, different across nodes (each namespace has its own).
  constexpr int kLen = 256;
  char mine[kLen] = {0};
  std::snprintf(mine, kLen, "%s", c.hostname().c_str());
  std::vector<char> all(static_cast<size_t>(P) * kLen);
  MPI_Allgather(mine, kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, MPI_COMM_WORLD);
  for (int r = 0; r < P; ++r) {
    std::string h(&all[static_cast<size_t>(r) * kLen]);
    bool same_node = c.node_of(r) == c.node();
    check(same_node == (h == c.hostname()),
          "rank " + std::to_string(r) + " hostname '" + h + "' vs mine '" + c.hostname() +
              "': expected " + (same_node ? "equal (same node)" : "different (other node)"));
  }
}

void check_alltoallv(int P, int iter) {
  std::vector<int> scount(P), sdispl(P), rcount(P), rdispl(P);
  int stot = 0, rtot = 0;
  for (int d = 0; d < P; ++d) {
    scount[d] = pair_bytes(g_rank, d, iter);
    sdispl[d] = stot;
    stot += scount[d];
    rcount[d] = pair_bytes(d, g_rank, iter);
    rdispl[d] = rtot;
    rtot += rcount[d];
  }
  std::vector<uint8_t> send(stot), recv(rtot, 0);
  for (int d = 0; d < P; ++d)
    for (int i = 0; i < scount[d]; ++i) send[sdispl[d] + i] = code(g_rank, d, i, iter);
  MPI_Alltoallv(send.data(), scount.data(), sdispl.data(), MPI_BYTE, recv.data(), rcount.data(),
                rdispl.data(), MPI_BYTE, MPI_COMM_WORLD);
  for (int s = 0; s < P; ++s) {
    int bad = 0, first = -1;
    for (int i = 0; i < rcount[s]; ++i)
      if (recv[rdispl[s] + i] != code(s, g_rank, i, iter)) {
        if (first < 0) first = i;
        ++bad;
      }
    check(bad == 0, "alltoallv iteration " + std::to_string(iter) + ": " + std::to_string(bad) +
                        " of " + std::to_string(rcount[s]) + " bytes from rank " +
                        std::to_string(s) + " wrong (first at byte " + std::to_string(first) + ")");
  }
}

// Rank 0 streams to the first rank of the last node; the time must not beat the shaped rate.
void check_rate(const tamoe::topo::Cluster& c, double rate_mbit) {
  int peer = c.world_rank_of(c.nnodes() - 1, 0);
  const int bytes = 8 << 20;
  std::vector<uint8_t> buf(bytes, 1);
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  if (g_rank == 0) {
    MPI_Send(buf.data(), bytes, MPI_BYTE, peer, 7, MPI_COMM_WORLD);
    MPI_Recv(nullptr, 0, MPI_BYTE, peer, 8, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else if (g_rank == peer) {
    MPI_Recv(buf.data(), bytes, MPI_BYTE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(nullptr, 0, MPI_BYTE, 0, 8, MPI_COMM_WORLD);
  }
  double dt = MPI_Wtime() - t0;
  MPI_Bcast(&dt, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  double mbit = bytes * 8.0 / dt / 1e6;
  if (g_rank == 0)
    std::printf("cross-node stream: %d bytes in %.1f ms = %.0f Mbit/s (shaped to %.0f)\n", bytes,
                dt * 1e3, mbit, rate_mbit);
  // The token bucket lets one 256 KiB burst through at full speed; 1.25x leaves room for that.
  check(mbit <= 1.25 * rate_mbit, "cross-node stream at most 1.25 x " + std::to_string(rate_mbit) +
                                      " Mbit/s, found " + std::to_string(mbit));
  // And the shaping did not collapse the link (a broken qdisc crawls or stalls). Loose on purpose:
  // ctest -j on a busy 2-core machine slows the ranks, not the wire.
  check(mbit >= 0.1 * rate_mbit, "cross-node stream at least 0.1 x " + std::to_string(rate_mbit) +
                                     " Mbit/s, found " + std::to_string(mbit));
}

double number_arg(const std::string& flag, const char* text) {
  char* end = nullptr;
  double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v > 0))
    tamoe::fail(tamoe::Status::invalid_argument, flag, "a positive number",
                tamoe::str("'", text, "'"));
  return v;
}

int run(int argc, char** argv) {
  int want_nodes = 2;
  double rate_mbit = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--nodes" || a == "--rate-mbit") && i + 1 < argc) {
      double v = number_arg(a, argv[++i]);
      if (a == "--nodes")
        want_nodes = static_cast<int>(v);
      else
        rate_mbit = v;
    } else {
      tamoe::fail(tamoe::Status::invalid_argument, tamoe::str("argument ", i),
                  "--nodes N or --rate-mbit R", "'" + a + "'");
    }
  }
  int P = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &P);
  tamoe::topo::ClusterOptions opts;
  opts.virtual_nodes = 1;  // one node per namespace: the real grouping, no virtual split
  tamoe::topo::Cluster c = tamoe::topo::Cluster::create(MPI_COMM_WORLD, opts);
  if (g_rank == 0) std::printf("cluster: %s\n", c.describe().c_str());
  check_topology(c, want_nodes, P);
  for (int iter = 0; iter < 3; ++iter) check_alltoallv(P, iter);
  if (rate_mbit > 0 && c.nnodes() > 1) check_rate(c, rate_mbit);
  int total = 0;
  MPI_Allreduce(&g_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0)
    std::printf("%s: %d failure(s) over %d ranks\n", total ? "FAIL" : "PASS", total, P);
  return total ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  int rc = 1;
  try {
    rc = run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", g_rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
