#include <cstdio>
#include <fstream>
#include <sstream>

#include "catch_compat.h"
#include "runtime/error.h"
#include "runtime/params.h"

using tamoe::Error;
using tamoe::Params;
using tamoe::ParamSource;

TEST_CASE("parameters have typed defaults", "[runtime][params]") {
  Params p = Params::defaults();
  CHECK(p.get_string("TAMOE_LOG") == "warn");
  CHECK(p.get_int("TAMOE_VIRTUAL_NODES") == 0);
  CHECK(p.get_real("TAMOE_PROBE_BUDGET_S") == Catch::Approx(60.0));
  CHECK(p.source("TAMOE_LOG") == ParamSource::default_value);
}

TEST_CASE("precedence is api > environment > file > default", "[runtime][params]") {
  Params p = Params::defaults();
  std::string path = "tamoe_test_params.conf";
  {
    std::ofstream f(path);
    f << "# comment\nTAMOE_VIRTUAL_NODES = 2\nTAMOE_LOG = info\n";
  }
  p.load_file(path);
  CHECK(p.get_int("TAMOE_VIRTUAL_NODES") == 2);
  CHECK(p.source("TAMOE_VIRTUAL_NODES") == ParamSource::file);
  p.load_environment({"TAMOE_VIRTUAL_NODES=4", "PATH=/bin"});
  CHECK(p.get_int("TAMOE_VIRTUAL_NODES") == 4);
  p.set("TAMOE_VIRTUAL_NODES", "8", ParamSource::api);
  p.load_environment({"TAMOE_VIRTUAL_NODES=3"});  // lower than api: ignored
  CHECK(p.get_int("TAMOE_VIRTUAL_NODES") == 8);
  CHECK(p.get_string("TAMOE_LOG") == "info");
  std::ostringstream os;
  p.print(os);
  CHECK(os.str().find("TAMOE_VIRTUAL_NODES") != std::string::npos);
  CHECK(os.str().find("api") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("garbage in a TAMOE_* variable is a clear error", "[runtime][params][bad-input]") {
  Params p = Params::defaults();
  auto msg = [&](const std::vector<std::string>& env) {
    try {
      p.load_environment(env);
    } catch (const Error& e) {
      CHECK(e.status() == tamoe::Status::invalid_input);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string m = msg({"TAMOE_VIRTUAL_NODES=two"});
  CHECK(m.find("TAMOE_VIRTUAL_NODES") != std::string::npos);
  CHECK(m.find("expected an integer") != std::string::npos);
  CHECK(m.find("'two'") != std::string::npos);
  CHECK(msg({"TAMOE_VIRTUAL_NODES=-1"}).find("out of range") != std::string::npos);
  CHECK(msg({"TAMOE_PROBE_BUDGET_S=nan"}).find("finite") != std::string::npos);
  CHECK(msg({"TAMOE_LOG=loud"}).find("none|error|warn|info|debug|trace") != std::string::npos);
  CHECK(msg({"TAMOE_NO_SUCH_THING=1"}).find("a known parameter") != std::string::npos);
}

TEST_CASE("a malformed parameter file names the line", "[runtime][params][bad-input]") {
  Params p = Params::defaults();
  std::string path = "tamoe_test_params_bad.conf";
  {
    std::ofstream f(path);
    f << "TAMOE_LOG = info\nthis line has no equals sign\n";
  }
  try {
    p.load_file(path);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(path + ":2") != std::string::npos);
  }
  std::remove(path.c_str());
  CHECK_THROWS_AS(p.load_file("/nonexistent/tamoe.conf"), Error);
}

TEST_CASE("strict number parsing", "[runtime][params]") {
  CHECK(tamoe::parse_int("42", "x") == 42);
  CHECK_THROWS_AS(tamoe::parse_int("42abc", "x"), Error);
  CHECK_THROWS_AS(tamoe::parse_int("", "x"), Error);
  CHECK(tamoe::parse_bytes("64K", "x") == 65536);
  CHECK(tamoe::parse_bytes("2M", "x") == 2 * 1024 * 1024);
  CHECK_THROWS_AS(tamoe::parse_bytes("-1", "x"), Error);
  CHECK(tamoe::parse_bool("on", "x"));
  CHECK_THROWS_AS(tamoe::parse_bool("maybe", "x"), Error);
}
