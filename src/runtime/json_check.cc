#include "runtime/json_check.h"

#include <cstdio>
#include <fstream>

namespace tamoe::json_check {

json load_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) fail(Status::invalid_input, path, "a readable " + what + " file", "cannot open it");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    fail(Status::invalid_input, path, "valid JSON", e.what());
  }
  return j;
}

void save_file(const json& j, const std::string& path) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) fail(Status::system, path, "a writable file", "cannot open '" + tmp + "'");
    out << j.dump(1) << "\n";
    if (!out) fail(Status::system, path, "a complete write", "an I/O error");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    fail(Status::system, path, "rename to succeed", "rename failed");
}

}  // namespace tamoe::json_check
