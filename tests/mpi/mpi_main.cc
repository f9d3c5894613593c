// Main for multi-rank Catch2 tests: every rank runs the session, the verdict is the MAX of
// all ranks' return codes so all ranks agree, and only rank 0 reports to the terminal
// (other ranks write to a file that is printed when they fail).
#if CATCH_MAJOR >= 3
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif
#include <mpi.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  // One rng seed for all ranks (Catch2 v3 would pick a different one per process).
  unsigned seed = std::random_device{}();
  MPI_Bcast(&seed, 1, MPI_UNSIGNED, 0, MPI_COMM_WORLD);

  std::vector<std::string> args(argv, argv + argc);
  std::string seed_s = std::to_string(seed);
  args.push_back("--rng-seed");
  args.push_back(seed_s);
  args.push_back("--order");
  args.push_back("decl");
  std::string out_file;
  if (rank != 0) {
    out_file = "tamoe_test_rank" + std::to_string(rank) + "." + std::to_string(::getpid()) + ".log";
    args.push_back("--out");
    args.push_back(out_file);
  }
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());

  Catch::Session session;
#if CATCH_MAJOR >= 3
  session.configData().defaultColourMode = Catch::ColourMode::None;
#else
  session.configData().useColour = Catch::UseColour::No;
#endif
  int rc = session.applyCommandLine(static_cast<int>(cargv.size()), cargv.data());
  if (rc == 0) rc = session.run();

  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (!out_file.empty()) {
    if (rc != 0) {
      std::ifstream in(out_file);
      std::cerr << "---- rank " << rank << " report ----\n" << in.rdbuf() << std::flush;
    }
    std::remove(out_file.c_str());
  }
  if (rank == 0)
    std::cout << "tamoe mpi test: " << size << " ranks, verdict " << (worst == 0 ? "PASS" : "FAIL")
              << " (worst rank rc " << worst << ")\n";
  MPI_Finalize();
  return worst == 0 ? 0 : 1;
}
