// Catch2 v2 (Debian 12) and v3 (Ubuntu 24.04) from one source.
#pragma once

#include <string>

#if CATCH_MAJOR >= 3
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
namespace Catch::Matchers {
// v2's name for a substring matcher.
inline StringContainsMatcher Contains(const std::string& s, CaseSensitive cs = CaseSensitive::Yes) {
  return ContainsSubstring(s, cs);
}
}  // namespace Catch::Matchers
namespace Catch {
using Matchers::Contains;  // v2 also had it directly in Catch
}  // namespace Catch
#else
#include <catch2/catch.hpp>
namespace Catch {
using Detail::Approx;
}
#endif

#include <string>

namespace tamoe::test {
// Path of a fixture under tests/data.
inline std::string data_path(const std::string& name) {
  return std::string(TAMOE_TEST_DATA_DIR) + "/" + name;
}
}  // namespace tamoe::test
