#include "catch_compat.h"
#include "runtime/error.h"

using tamoe::Error;
using tamoe::Status;

TEST_CASE("errors say where, what was expected and what was found", "[runtime]") {
  try {
    tamoe::fail(Status::invalid_input, "cluster.json: links[3].bw_gbps", "a positive bandwidth",
                "-5");
    FAIL("fail() returned");
  } catch (const Error& e) {
    CHECK(e.status() == Status::invalid_input);
    CHECK(std::string(e.what()) ==
          "cluster.json: links[3].bw_gbps: expected a positive bandwidth, found -5");
  }
  CHECK(std::string(tamoe::status_name(Status::mismatch)) == "ranks disagree");
  CHECK(tamoe::str("rank ", 3, " of ", 4.5) == "rank 3 of 4.5");
}
