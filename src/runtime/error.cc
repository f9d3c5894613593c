#include "runtime/error.h"

namespace tamoe {

const char* status_name(Status s) noexcept {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::invalid_argument:
      return "invalid argument";
    case Status::invalid_input:
      return "invalid input";
    case Status::mismatch:
      return "ranks disagree";
    case Status::unavailable:
      return "unavailable";
    case Status::system:
      return "system error";
    case Status::internal:
      return "internal error";
    case Status::timeout:
      return "timeout";
  }
  return "unknown status";
}

void fail(Status status, const std::string& where, const std::string& expected,
          const std::string& found) {
  throw Error(status, where + ": expected " + expected + ", found " + found);
}

void fail(Status status, const std::string& where, const std::string& what) {
  throw Error(status, where + ": " + what);
}

}  // namespace tamoe
