// Error type and status codes. Inside tamoe errors are exceptions (tamoe::Error); the C API turns
// them into status codes. Every message says where, what was expected and what was found.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tamoe {

enum class Status : int {
  ok = 0,
  invalid_argument = 1,  // a caller passed a bad value
  invalid_input = 2,     // a file, string or environment variable is malformed or contradictory
  mismatch = 3,          // ranks disagree (counts, shapes, plans)
  unavailable = 4,       // a feature or device is not present (no GPU, built without CUDA)
  system = 5,            // a failure reported by MPI, CUDA, NCCL, hwloc or the OS
  internal = 6,          // a broken invariant inside tamoe
  timeout = 7,
};

const char* status_name(Status s) noexcept;

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const noexcept { return status_; }

 private:
  Status status_;
};

// "<where>: expected <expected>, found <found>"
[[noreturn]] void fail(Status status, const std::string& where, const std::string& expected,
                       const std::string& found);
// "<where>: <what>"
[[noreturn]] void fail(Status status, const std::string& where, const std::string& what);

// Streams any printable values into a string: str("rank ", r, " of ", n).
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace tamoe

// Checks that print the failing call and the values involved.
#define TAMOE_CHECK_ARG(cond, where, expected, found)                                      \
  do {                                                                                     \
    if (!(cond)) ::tamoe::fail(::tamoe::Status::invalid_argument, where, expected, found); \
  } while (0)

#define TAMOE_CHECK_MPI(call)                                                        \
  do {                                                                               \
    int tamoe_mpi_rc_ = (call);                                                      \
    if (tamoe_mpi_rc_ != MPI_SUCCESS) {                                              \
      char tamoe_mpi_msg_[MPI_MAX_ERROR_STRING];                                     \
      int tamoe_mpi_len_ = 0;                                                        \
      MPI_Error_string(tamoe_mpi_rc_, tamoe_mpi_msg_, &tamoe_mpi_len_);              \
      ::tamoe::fail(::tamoe::Status::system, ::tamoe::str(__FILE__, ":", __LINE__),  \
                    ::tamoe::str(#call, " to return MPI_SUCCESS"),                   \
                    ::tamoe::str("error ", tamoe_mpi_rc_, " (",                      \
                                 std::string(tamoe_mpi_msg_, tamoe_mpi_len_), ")")); \
    }                                                                                \
  } while (0)
