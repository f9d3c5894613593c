#include "collectives/algo_spec.h"

#include <algorithm>

#include "runtime/error.h"
#include "runtime/params.h"

namespace tamoe::coll {

namespace {
std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}
std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}
}  // namespace

AlgoSpec parse_algo_spec(const std::string& text, const std::vector<std::string>& known,
                         const std::string& where) {
  AlgoSpec spec;
  std::string t = trim(text);
  if (t.empty())
    fail(Status::invalid_input, where, "\"auto\" or rules ALGO[@LO-HI] separated by commas",
         "an empty string");
  size_t pos = 0;
  int index = 0;
  while (pos <= t.size()) {
    size_t comma = t.find(',', pos);
    std::string tok =
        trim(t.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    std::string at = str(where, " rule ", index, " \"", tok, "\"");
    if (tok.empty()) fail(Status::invalid_input, at, "ALGO or ALGO@LO-HI", "an empty rule");
    AlgoRule rule;
    size_t a = tok.find('@');
    rule.algo = trim(tok.substr(0, a));
    if (rule.algo != "auto" && std::find(known.begin(), known.end(), rule.algo) == known.end())
      fail(Status::invalid_input, at, str("an algorithm among: auto, ", join(known)),
           str("\"", rule.algo, "\""));
    if (a != std::string::npos) {
      std::string range = trim(tok.substr(a + 1));
      size_t dash = range.find('-');
      if (dash == std::string::npos)
        fail(Status::invalid_input, at, "a byte range LO-HI or LO- after '@'",
             str("\"", range, "\""));
      std::string lo = trim(range.substr(0, dash)), hi = trim(range.substr(dash + 1));
      if (lo.empty()) fail(Status::invalid_input, at, "a lower bound before '-'", "nothing");
      rule.lo_bytes = parse_bytes(lo, at + " lower bound");
      rule.hi_bytes = hi.empty() ? -1 : parse_bytes(hi, at + " upper bound");
      if (rule.lo_bytes < 0 || (rule.hi_bytes >= 0 && rule.hi_bytes <= rule.lo_bytes))
        fail(Status::invalid_input, at, "0 <= LO < HI",
             str("LO=", rule.lo_bytes, " HI=", rule.hi_bytes));
    }
    spec.rules.push_back(rule);
    ++index;
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (spec.rules.size() == 1 && spec.rules[0].algo == "auto" && spec.rules[0].hi_bytes < 0 &&
      spec.rules[0].lo_bytes == 0)
    spec.rules.clear();
  return spec;
}

std::string AlgoSpec::pick(double pair_bytes) const {
  for (const auto& r : rules)
    if (pair_bytes >= static_cast<double>(r.lo_bytes) &&
        (r.hi_bytes < 0 || pair_bytes < static_cast<double>(r.hi_bytes)))
      return r.algo;
  return "auto";
}

std::string AlgoSpec::to_string() const {
  if (rules.empty()) return "auto";
  std::string out;
  for (const auto& r : rules) {
    if (!out.empty()) out += ",";
    out += r.algo;
    if (r.lo_bytes != 0 || r.hi_bytes >= 0)
      out += str("@", r.lo_bytes, "-", r.hi_bytes >= 0 ? std::to_string(r.hi_bytes) : "");
  }
  return out;
}

}  // namespace tamoe::coll
