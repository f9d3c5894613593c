#include "runtime/params.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <mutex>
#include <optional>
#include <ostream>

#include "runtime/error.h"

extern char** environ;

namespace tamoe {

void define_builtin_params(Params& p);  // params_table.cc

const char* param_source_name(ParamSource s) noexcept {
  switch (s) {
    case ParamSource::default_value:
      return "default";
    case ParamSource::file:
      return "file";
    case ParamSource::environment:
      return "environment";
    case ParamSource::api:
      return "api";
  }
  return "?";
}

namespace {
std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
}  // namespace

int64_t parse_int(const std::string& text, const std::string& where) {
  std::string t = trim(text);
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0' || errno == ERANGE)
    fail(Status::invalid_input, where, "an integer", "'" + text + "'");
  return v;
}

double parse_real(const std::string& text, const std::string& where) {
  std::string t = trim(text);
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
    fail(Status::invalid_input, where, "a finite number", "'" + text + "'");
  return v;
}

bool parse_bool(const std::string& text, const std::string& where) {
  std::string t = lower(trim(text));
  if (t == "1" || t == "true" || t == "yes" || t == "on") return true;
  if (t == "0" || t == "false" || t == "no" || t == "off") return false;
  fail(Status::invalid_input, where, "a boolean (1/0, true/false, yes/no, on/off)",
       "'" + text + "'");
}

int64_t parse_bytes(const std::string& text, const std::string& where) {
  std::string t = trim(text);
  int64_t mult = 1;
  if (!t.empty()) {
    char c = static_cast<char>(std::toupper(static_cast<unsigned char>(t.back())));
    if (c == 'K' || c == 'M' || c == 'G' || c == 'T') {
      mult = c == 'K' ? 1LL << 10 : c == 'M' ? 1LL << 20 : c == 'G' ? 1LL << 30 : 1LL << 40;
      t.pop_back();
    }
  }
  int64_t v = 0;
  try {
    v = parse_int(t, where);
  } catch (const Error&) {
    fail(Status::invalid_input, where, "a byte count such as 4096, 64K, 1M or 2G",
         "'" + text + "'");
  }
  if (v < 0) fail(Status::invalid_input, where, "a non-negative byte count", "'" + text + "'");
  return v * mult;
}

Params Params::defaults() {
  Params p;
  define_builtin_params(p);
  return p;
}

Params& Params::global() {
  static Params* instance = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    auto* p = new Params(defaults());
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
    // The file comes first so the environment can override it; TAMOE_CONF_FILE itself may only
    // be set in the environment.
    for (const auto& kv : env)
      if (kv.rfind("TAMOE_CONF_FILE=", 0) == 0 && kv.size() > 16) p->load_file(kv.substr(16));
    p->load_environment(env);
    instance = p;
  });
  if (!instance)
    fail(Status::internal, "tamoe::Params::global",
         "the parameter registry failed to load earlier");
  return *instance;
}

void Params::define(const ParamSpec& spec) {
  std::string why;
  auto v = validate(spec, spec.default_value, &why);
  if (!v)
    fail(Status::internal, "parameter " + spec.name, "a valid default",
         spec.default_value + " (" + why + ")");
  Entry e;
  e.spec = spec;
  e.value = *v;
  entries_[spec.name] = e;
}

std::optional<std::string> Params::validate(const ParamSpec& spec, const std::string& value,
                                            std::string* why) {
  std::string v = trim(value);
  try {
    switch (spec.type) {
      case ParamType::integer: {
        int64_t x = parse_int(v, spec.name);
        if (x < spec.min || x > spec.max) {
          *why = str("out of range [", static_cast<int64_t>(spec.min), ", ",
                     static_cast<int64_t>(spec.max), "]");
          return std::nullopt;
        }
        return std::to_string(x);
      }
      case ParamType::real: {
        double x = parse_real(v, spec.name);
        if (x < spec.min || x > spec.max) {
          *why = str("out of range [", spec.min, ", ", spec.max, "]");
          return std::nullopt;
        }
        return v;
      }
      case ParamType::boolean:
        return parse_bool(v, spec.name) ? "1" : "0";
      case ParamType::choice: {
        std::string l = lower(v);
        for (const auto& c : spec.choices)
          if (l == c) return c;
        std::string all;
        for (const auto& c : spec.choices) all += (all.empty() ? "" : "|") + c;
        *why = "one of " + all;
        return std::nullopt;
      }
      case ParamType::string:
        return value;
    }
  } catch (const Error& e) {
    *why = e.what();
    return std::nullopt;
  }
  return std::nullopt;
}

void Params::set(const std::string& name, const std::string& value, ParamSource source,
                 const std::string& origin) {
  auto it = entries_.find(name);
  std::string where = origin.empty() ? name : name + " (" + origin + ")";
  if (it == entries_.end()) {
    std::string known;
    for (const auto& [n, e] : entries_) known += (known.empty() ? "" : ", ") + n;
    fail(Status::invalid_input, where, "a known parameter (" + known + ")", "'" + name + "'");
  }
  Entry& e = it->second;
  std::string why;
  std::optional<std::string> v = validate(e.spec, value, &why);
  if (!v) {
    std::string expected;
    switch (e.spec.type) {
      case ParamType::integer:
        expected = "an integer";
        break;
      case ParamType::real:
        expected = "a finite number";
        break;
      case ParamType::boolean:
        expected = "a boolean";
        break;
      case ParamType::choice:
        expected = "a choice";
        break;
      case ParamType::string:
        expected = "a string";
        break;
    }
    fail(Status::invalid_input, where, expected + " (" + why + ")", "'" + value + "'");
  }
  if (source < e.source) return;
  e.value = *v;
  e.source = source;
  e.origin = origin;
}

void Params::load_environment(const std::vector<std::string>& env) {
  for (const auto& kv : env) {
    if (kv.rfind("TAMOE_", 0) != 0) continue;
    size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string name = kv.substr(0, eq);
    if (name == "TAMOE_TEST_RANKS") continue;  // set by ctest for multi-rank tests
    set(name, kv.substr(eq + 1), ParamSource::environment, "environment variable " + name);
  }
}

void Params::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    fail(Status::invalid_input, "TAMOE_CONF_FILE", "a readable parameter file",
         "'" + path + "' (cannot open)");
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    size_t eq = t.find('=');
    std::string where = path + ":" + std::to_string(lineno);
    if (eq == std::string::npos)
      fail(Status::invalid_input, where, "a line NAME = VALUE", "'" + line + "'");
    set(trim(t.substr(0, eq)), trim(t.substr(eq + 1)), ParamSource::file, where);
  }
}

const Params::Entry& Params::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    fail(Status::internal, "tamoe::Params", "a declared parameter", "'" + name + "'");
  return it->second;
}

int64_t Params::get_int(const std::string& name) const {
  return parse_int(entry(name).value, name);
}
double Params::get_real(const std::string& name) const {
  return parse_real(entry(name).value, name);
}
bool Params::get_bool(const std::string& name) const {
  return entry(name).value == "1";
}
std::string Params::get_string(const std::string& name) const {
  return entry(name).value;
}
ParamSource Params::source(const std::string& name) const {
  return entry(name).source;
}

std::vector<std::string> Params::names() const {
  std::vector<std::string> n;
  for (const auto& [k, e] : entries_) n.push_back(k);
  return n;
}

void Params::print(std::ostream& os) const {
  os << std::left << std::setw(24) << "parameter" << std::setw(14) << "value" << std::setw(28)
     << "source"
     << "description\n";
  for (const auto& [name, e] : entries_) {
    std::string src = param_source_name(e.source);
    if (!e.origin.empty() && e.source == ParamSource::file) src += " " + e.origin;
    os << std::left << std::setw(24) << name << std::setw(14)
       << (e.value.empty() ? "\"\"" : e.value) << std::setw(28) << src << e.spec.description
       << "\n";
  }
}

}  // namespace tamoe
