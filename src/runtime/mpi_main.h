// The main() of tamoe's MPI programs (tamoe-probe, tamoe-train, the MPI benches): MPI_Init_thread
// (funneled), run(argc, argv), MPI_Finalize, and one policy for an error that escapes `run`:
// - it prints "<program>: error on rank R: <what>" on stderr from each rank it escaped on;
// - the exit code is `unavailable_rc` for Status::unavailable (no GPU, built without CUDA: a
//   bench can report "skipped"), 1 otherwise;
// - with `abort_on_error` (the default) the whole job goes down through MPI_Abort, since the
//   other ranks may be waiting for this one in a collective. Without it every rank returns, which
//   suits programs whose errors all ranks meet alike (they check the same arguments and inputs);
//   then a tamoe::Error of status invalid_argument or invalid_input is printed by rank 0 only.
#pragma once

#include <mpi.h>

#include <cstdio>
#include <exception>

#include "runtime/error.h"

namespace tamoe {

struct MpiMainOptions {
  int unavailable_rc = 1;
  bool abort_on_error = true;
};

template <typename Run>
int mpi_main(const char* program, int argc, char** argv, Run run, MpiMainOptions opt = {}) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int rc = 0;
  bool failed = false;
  try {
    rc = run(argc, argv);
  } catch (const Error& e) {
    const bool alike =
        e.status() == Status::invalid_argument || e.status() == Status::invalid_input;
    if (rank == 0 || !alike || opt.abort_on_error)
      std::fprintf(stderr, "%s: error on rank %d: %s\n", program, rank, e.what());
    rc = e.status() == Status::unavailable ? opt.unavailable_rc : 1;
    failed = true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error on rank %d: %s\n", program, rank, e.what());
    rc = 1;
    failed = true;
  }
  if (failed && opt.abort_on_error) MPI_Abort(MPI_COMM_WORLD, rc);
  MPI_Finalize();
  return rc;
}

}  // namespace tamoe
