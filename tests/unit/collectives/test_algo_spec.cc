#include <string>
#include <vector>

#include "catch_compat.h"
#include "collectives/algo_spec.h"
#include "collectives/types.h"
#include "runtime/error.h"

using tamoe::Error;
using tamoe::Status;
using namespace tamoe::coll;

namespace {
const std::vector<std::string> kKnown = {"mpi", "pairwise", "hier", "hier_inter_first"};

std::string error_of(const std::string& text) {
  try {
    parse_algo_spec(text, kKnown);
  } catch (const Error& e) {
    CHECK(e.status() == Status::invalid_input);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("auto and a bare name", "[coll][algo_spec]") {
  CHECK(parse_algo_spec("auto", kKnown).rules.empty());
  CHECK(parse_algo_spec("  auto ", kKnown).pick(1e9) == "auto");
  AlgoSpec s = parse_algo_spec("hier", kKnown);
  REQUIRE(s.rules.size() == 1);
  CHECK(s.pick(0) == "hier");
  CHECK(s.pick(1e12) == "hier");
  CHECK(s.to_string() == "hier");
}

TEST_CASE("size ranges are half-open and the first match wins", "[coll][algo_spec]") {
  AlgoSpec s = parse_algo_spec("hier@0-4K, mpi@4K-", kKnown);
  REQUIRE(s.rules.size() == 2);
  CHECK(s.rules[0].hi_bytes == 4096);
  CHECK(s.rules[1].hi_bytes == -1);
  CHECK(s.pick(0) == "hier");
  CHECK(s.pick(4095.9) == "hier");
  CHECK(s.pick(4096) == "mpi");
  CHECK(s.pick(1e10) == "mpi");
  CHECK(s.to_string() == "hier@0-4096,mpi@4096-");
  // A gap falls back to auto.
  AlgoSpec g = parse_algo_spec("pairwise@1K-2K", kKnown);
  CHECK(g.pick(512) == "auto");
  CHECK(g.pick(1024) == "pairwise");
  CHECK(g.pick(2048) == "auto");
  // Overlap: the first rule wins.
  AlgoSpec o = parse_algo_spec("hier_inter_first@0-1M,hier@0-", kKnown);
  CHECK(o.pick(100) == "hier_inter_first");
  CHECK(o.pick(2 << 20) == "hier");
}

TEST_CASE("bad override strings name the rule and what was expected", "[coll][algo_spec]") {
  CHECK(error_of("").find("empty string") != std::string::npos);
  std::string e = error_of("mpi,hierr");
  CHECK(e.find("rule 1") != std::string::npos);
  CHECK(e.find("\"hierr\"") != std::string::npos);
  CHECK(e.find("hier_inter_first") != std::string::npos);
  CHECK(error_of("mpi@4K").find("LO-HI") != std::string::npos);
  CHECK(error_of("mpi@-4K").find("lower bound") != std::string::npos);
  CHECK(error_of("mpi@8K-4K").find("LO < HI") != std::string::npos);
  CHECK(error_of("mpi@1X-").find("byte count") != std::string::npos);
  CHECK(error_of("mpi,,hier").find("empty rule") != std::string::npos);
  CHECK(error_of("mpi,").find("empty rule") != std::string::npos);
}

TEST_CASE("dtype names and bf16 rounding", "[coll][types]") {
  CHECK(parse_dtype("bf16", "x") == DType::bf16);
  CHECK(dtype_bytes(DType::f64) == 8);
  CHECK_THROWS_AS(parse_dtype("f16", "x"), Error);
  for (float v : {0.0f, 1.0f, -2.5f, 3.140625f, 1e-3f, 65504.0f})
    CHECK(bf16_to_float(float_to_bf16(v)) == Catch::Approx(v).epsilon(1.0 / 128));
  CHECK(bf16_to_float(float_to_bf16(1.0f)) == 1.0f);
  // 1 + 2^-8 is halfway between two bf16 values: ties go to even (1.0).
  CHECK(bf16_to_float(float_to_bf16(1.0f + 1.0f / 256)) == 1.0f);
}
