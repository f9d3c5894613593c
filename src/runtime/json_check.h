// Field checks shared by every JSON loader (cost model, node topology, plan, ...): each failure
// is a tamoe::Error (invalid_input) naming the JSON path, what was expected and what was found.
// Also the file reading and writing those loaders share.
#pragma once

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "runtime/error.h"

namespace tamoe::json_check {

using nlohmann::json;

// Rejects a non-object and any key outside `allowed`, listing the allowed ones.
inline void fields(const json& j, const std::string& where, const std::set<std::string>& allowed) {
  if (!j.is_object()) fail(Status::invalid_input, where, "an object", j.type_name());
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(Status::invalid_input, where + "." + it.key(), "a known field (" + list + ")",
           "unknown field '" + it.key() + "'");
    }
}
// The key as const char* keeps g++ 13's -Wdangling-reference quiet for `const json& x = need(...)`.
inline const json& need(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key))
    fail(Status::invalid_input, where + "." + key, "a required field", "nothing");
  return j.at(key);
}
inline double number(const json& j, const std::string& where) {
  if (!j.is_number()) fail(Status::invalid_input, where, "a number", j.dump());
  double v = j.get<double>();
  if (!std::isfinite(v)) fail(Status::invalid_input, where, "a finite number", j.dump());
  return v;
}
inline int64_t integer(const json& j, const std::string& where) {
  if (!j.is_number_integer()) fail(Status::invalid_input, where, "an integer", j.dump());
  return j.get<int64_t>();
}
inline std::string text(const json& j, const std::string& where) {
  if (!j.is_string()) fail(Status::invalid_input, where, "a string", j.dump());
  return j.get<std::string>();
}
// Returns the array itself; a pointer, because g++ 13 flags references returned through a
// function taking temporaries (-Wdangling-reference) even when they alias an argument.
inline const json* array(const json& j, const std::string& where) {
  if (!j.is_array()) fail(Status::invalid_input, where, "an array", j.type_name());
  return &j;
}

// Parses the JSON file at `path`; `what` names its kind in the error ("a readable <what> file").
json load_file(const std::string& path, const std::string& what);
// Writes `j` to `path` through a temporary file and a rename, so readers never see half a file.
void save_file(const json& j, const std::string& path);

}  // namespace tamoe::json_check
