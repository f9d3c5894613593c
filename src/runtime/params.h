// The one registry of TAMOE_* parameters: every tunable is declared in params_table.cc with its
// type, default, description and validation. Values come from (highest first) the API, the
// environment, a parameter file (TAMOE_CONF_FILE, lines "NAME = VALUE"), or the default, and
// the registry remembers which.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tamoe {

enum class ParamType { integer, real, boolean, string, choice };
enum class ParamSource { default_value = 0, file = 1, environment = 2, api = 3 };
const char* param_source_name(ParamSource s) noexcept;

struct ParamSpec {
  std::string name;  // "TAMOE_LOG"
  ParamType type = ParamType::string;
  std::string default_value;
  std::string description;
  std::vector<std::string> choices;  // for choice; for string, an empty list means "any"
  double min = -1e300;               // for integer and real
  double max = 1e300;
};

class Params {
 public:
  // The process-wide registry, filled from params_table.cc, the file and the environment on
  // first use. Throws tamoe::Error when an environment variable or the file holds garbage.
  static Params& global();

  // A registry with the built-in table and nothing loaded (tests).
  static Params defaults();

  void define(const ParamSpec& spec);
  // Sets a value from `source`; ignored if the current value came from a higher source.
  // Throws tamoe::Error (invalid_input) naming the parameter, the origin and the bad value.
  void set(const std::string& name, const std::string& value, ParamSource source,
           const std::string& origin = "");
  // Reads TAMOE_* from an environment (KEY=VALUE strings); unknown TAMOE_* names are errors.
  void load_environment(const std::vector<std::string>& env);
  void load_file(const std::string& path);

  int64_t get_int(const std::string& name) const;
  double get_real(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  ParamSource source(const std::string& name) const;
  bool has(const std::string& name) const { return entries_.count(name) != 0; }

  // A table: name, value, source, description.
  void print(std::ostream& os) const;
  std::vector<std::string> names() const;

 private:
  struct Entry {
    ParamSpec spec;
    std::string value;
    ParamSource source = ParamSource::default_value;
    std::string origin;
  };
  const Entry& entry(const std::string& name) const;
  static std::optional<std::string> validate(const ParamSpec& spec, const std::string& value,
                                             std::string* why);
  std::map<std::string, Entry> entries_;
};

// Parses helpers shared with tools: strict, whole-string, with a clear error naming `where`.
int64_t parse_int(const std::string& text, const std::string& where);
double parse_real(const std::string& text, const std::string& where);
bool parse_bool(const std::string& text, const std::string& where);
// "4096", "64K", "1M", "2G" (binary multiples) -> bytes.
int64_t parse_bytes(const std::string& text, const std::string& where);

}  // namespace tamoe
