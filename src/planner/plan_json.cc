// JSON in/out of the plan, format "tamoe.plan" version 1.
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "planner/plan.h"
#include "runtime/error.h"
#include "runtime/json_check.h"

namespace tamoe::plan {

using json_check::integer;
using json_check::need;
using json_check::number;
using json_check::text;
using nlohmann::json;

namespace {
constexpr const char* kFormat = "tamoe.plan";
constexpr int kVersion = 1;

const json& array(const json& j, size_t n, const std::string& where) {
  if (!j.is_array() || j.size() != n)
    fail(Status::invalid_input, where, str("an array of ", n, " entries"),
         j.is_array() ? str(j.size(), " entries") : std::string(j.type_name()));
  return j;
}
json levels_json(const std::array<double, kLevels>& v) {
  json o;
  for (int l = 0; l < kLevels; ++l) o[level_name(l)] = v[l];
  return o;
}
std::array<double, kLevels> levels_from(const json& j, const std::string& where) {
  json_check::fields(j, where, {"self", "node", "leaf", "remote"});
  std::array<double, kLevels> v{};
  for (int l = 0; l < kLevels; ++l)
    v[l] = number(need(j, level_name(l), where), where + "." + level_name(l));
  return v;
}
}  // namespace

json Plan::to_json() const {
  json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["nranks"] = nranks;
  j["mode"] = mode_name(mode);
  j["rho"] = rho;
  j["kl_budget"] = kl_budget;
  j["eps"] = eps;
  j["source"] = source;
  j["solver"] = {{"name", solver}, {"seconds", solve_seconds}, {"iterations", iterations}};
  j["shape"] = {{"experts_per_rank", shape.experts_per_rank},
                {"tokens_per_rank", shape.tokens_per_rank},
                {"top_k", shape.top_k},
                {"hidden", shape.hidden},
                {"bytes_per_element", shape.bytes_per_element},
                {"capacity_factor", shape.capacity_factor}};
  j["node"] = node;
  j["leaf"] = leaf;
  j["storage"] = is_ladder ? "ladder" : "dense";
  if (is_ladder) {
    j["ladder"] = levels_json(ladder_x);
    json cap;
    for (int l = 0; l < kLevels; ++l)
      cap[level_name(l)] = static_cast<int64_t>(
          std::ceil(shape.capacity_factor * static_cast<double>(shape.tokens_per_rank) *
                    shape.top_k * ladder_x[l] * (1 - 1e-12)));
    j["ladder_capacity"] = cap;
  } else {
    json rows = json::array(), caps = json::array();
    for (int i = 0; i < nranks; ++i) {
      rows.push_back(std::vector<double>(x.begin() + static_cast<size_t>(i) * nranks,
                                         x.begin() + static_cast<size_t>(i + 1) * nranks));
      caps.push_back(capacity_row(i));
    }
    j["x"] = rows;
    j["capacity"] = caps;
  }
  const Metrics& m = metrics;
  j["predicted"] = {{"plan_s", m.plan_seconds},
                    {"plan_bw_s", m.plan_bw_seconds},
                    {"plan_lat_s", m.plan_lat_seconds},
                    {"uniform_s", m.uniform_seconds},
                    {"uniform_bw_s", m.uniform_bw_seconds},
                    {"speedup", m.speedup},
                    {"bw_speedup", m.bw_speedup}};
  j["shares"] = levels_json(m.share);
  j["ladder_profile"] = levels_json(m.ladder);
  j["kl_from_uniform"] = m.kl_from_uniform;
  return j;
}

Plan Plan::from_json(const json& j, const std::string& where) {
  json_check::fields(
      j, where, {"format",  "version",        "nranks",          "mode",  "rho",      "kl_budget",
                 "eps",     "source",         "solver",          "shape", "node",     "leaf",
                 "storage", "ladder",         "ladder_capacity", "x",     "capacity", "predicted",
                 "shares",  "ladder_profile", "kl_from_uniform"});
  std::string format = text(need(j, "format", where), where + ".format");
  if (format != kFormat)
    fail(Status::invalid_input, where + ".format", str("'", kFormat, "'"), "'" + format + "'");
  int64_t version = integer(need(j, "version", where), where + ".version");
  if (version != kVersion)
    fail(Status::invalid_input, where + ".version", str(kVersion), str(version));
  Plan p;
  int64_t n = integer(need(j, "nranks", where), where + ".nranks");
  if (n < 1 || n > (1 << 24))
    fail(Status::invalid_input, where + ".nranks", "a rank count in [1, 2^24]", str(n));
  p.nranks = static_cast<int>(n);
  p.mode = parse_mode(text(need(j, "mode", where), where + ".mode"), where + ".mode");
  p.rho = number(need(j, "rho", where), where + ".rho");
  if (j.contains("kl_budget")) p.kl_budget = number(j["kl_budget"], where + ".kl_budget");
  if (j.contains("eps")) p.eps = number(j["eps"], where + ".eps");
  if (j.contains("source")) p.source = text(j["source"], where + ".source");
  if (j.contains("solver")) {
    const json& s = j["solver"];
    std::string w = where + ".solver";
    json_check::fields(s, w, {"name", "seconds", "iterations"});
    if (s.contains("name")) p.solver = text(s["name"], w + ".name");
    if (s.contains("seconds")) p.solve_seconds = number(s["seconds"], w + ".seconds");
    if (s.contains("iterations"))
      p.iterations = static_cast<int>(integer(s["iterations"], w + ".iterations"));
  }
  {
    const json& s = need(j, "shape", where);
    std::string w = where + ".shape";
    json_check::fields(s, w,
                       {"experts_per_rank", "tokens_per_rank", "top_k", "hidden",
                        "bytes_per_element", "capacity_factor"});
    p.shape.experts_per_rank =
        static_cast<int>(integer(need(s, "experts_per_rank", w), w + ".experts_per_rank"));
    p.shape.tokens_per_rank = integer(need(s, "tokens_per_rank", w), w + ".tokens_per_rank");
    p.shape.top_k = static_cast<int>(integer(need(s, "top_k", w), w + ".top_k"));
    p.shape.hidden = integer(need(s, "hidden", w), w + ".hidden");
    p.shape.bytes_per_element =
        static_cast<int>(integer(need(s, "bytes_per_element", w), w + ".bytes_per_element"));
    p.shape.capacity_factor = number(need(s, "capacity_factor", w), w + ".capacity_factor");
    p.shape.validate(w);
  }
  for (const char* key : {"node", "leaf"}) {
    std::string w = where + "." + key;
    const json& a = array(need(j, key, where), p.nranks, w);
    std::vector<int>& dst = std::string(key) == "node" ? p.node : p.leaf;
    dst.resize(p.nranks);
    for (int r = 0; r < p.nranks; ++r) {
      int64_t v = integer(a[r], str(w, "[", r, "]"));
      if (v < 0) fail(Status::invalid_input, str(w, "[", r, "]"), "a non-negative id", str(v));
      dst[r] = static_cast<int>(v);
    }
  }
  std::string storage = text(need(j, "storage", where), where + ".storage");
  if (storage == "ladder") {
    p.is_ladder = true;
    p.ladder_x = levels_from(need(j, "ladder", where), where + ".ladder");
  } else if (storage == "dense") {
    const std::string where_x = where + ".x";
    const json& rows = array(need(j, "x", where), p.nranks, where_x);
    p.x.resize(static_cast<size_t>(p.nranks) * p.nranks);
    for (int i = 0; i < p.nranks; ++i) {
      std::string w = str(where, ".x[", i, "]");
      const json& row = array(rows[i], p.nranks, w);
      for (int k = 0; k < p.nranks; ++k)
        p.x[static_cast<size_t>(i) * p.nranks + k] = number(row[k], str(w, "[", k, "]"));
    }
  } else {
    fail(Status::invalid_input, where + ".storage", "'dense' or 'ladder'", "'" + storage + "'");
  }
  p.validate(where);
  // Capacities are derived data; a file whose capacities disagree with X was edited by hand.
  if (!p.is_ladder && j.contains("capacity")) {
    const std::string where_cap = where + ".capacity";
    const json& caps = array(j["capacity"], p.nranks, where_cap);
    for (int i = 0; i < p.nranks; ++i) {
      std::string w = str(where, ".capacity[", i, "]");
      const json& row = array(caps[i], p.nranks, w);
      for (int k = 0; k < p.nranks; ++k) {
        int64_t c = integer(row[k], str(w, "[", k, "]"));
        if (c != p.capacity(i, k))
          fail(Status::invalid_input, str(w, "[", k, "]"),
               str("ceil(cf*S*k*X) = ", p.capacity(i, k)), str(c));
      }
    }
  }
  compute_structure_metrics(p);
  if (j.contains("predicted")) {
    const json& pr = j["predicted"];
    std::string w = where + ".predicted";
    json_check::fields(pr, w,
                       {"plan_s", "plan_bw_s", "plan_lat_s", "uniform_s", "uniform_bw_s", "speedup",
                        "bw_speedup"});
    Metrics& m = p.metrics;
    m.plan_seconds = number(need(pr, "plan_s", w), w + ".plan_s");
    m.uniform_seconds = number(need(pr, "uniform_s", w), w + ".uniform_s");
    m.speedup = number(need(pr, "speedup", w), w + ".speedup");
    if (pr.contains("plan_bw_s")) m.plan_bw_seconds = number(pr["plan_bw_s"], w + ".plan_bw_s");
    if (pr.contains("uniform_bw_s"))
      m.uniform_bw_seconds = number(pr["uniform_bw_s"], w + ".uniform_bw_s");
    if (pr.contains("bw_speedup")) m.bw_speedup = number(pr["bw_speedup"], w + ".bw_speedup");
    if (pr.contains("plan_lat_s")) m.plan_lat_seconds = number(pr["plan_lat_s"], w + ".plan_lat_s");
    if (m.plan_seconds < 0 || m.uniform_seconds < 0 || m.speedup < 0)
      fail(Status::invalid_input, w, "non-negative times and speedup",
           str(m.plan_seconds, ", ", m.uniform_seconds, ", ", m.speedup));
  }
  return p;
}

void Plan::save(const std::string& path) const {
  json_check::save_file(to_json(), path);
}

Plan Plan::load(const std::string& path) {
  return from_json(json_check::load_file(path, "plan"), path);
}

}  // namespace tamoe::plan
