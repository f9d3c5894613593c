// The main of the MPI tools (tamoe-probe, tamoe-train): MPI_Init_thread (funneled), run(argc,
// argv), MPI_Finalize. An exception on any rank prints "<tool>: error on rank R: <what>" and
// aborts the whole job, since the other ranks may be waiting in a collective for this one.
#pragma once

#include <mpi.h>

#include <cstdio>
#include <exception>

namespace tamoe::tools {

template <typename Run>
int mpi_tool_main(const char* tool, int argc, char** argv, Run run) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rc = 0;
  try {
    rc = run(argc, argv);
  } catch (const std::exception& e) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::fprintf(stderr, "%s: error on rank %d: %s\n", tool, rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}

}  // namespace tamoe::tools
