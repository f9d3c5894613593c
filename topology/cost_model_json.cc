// JSON in/out of the cost model, format "tamoe.cost_model" version 1.
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/error.h"
#include "runtime/json_check.h"
#include "topology/cost_model.h"

namespace tamoe::topo {

using json_check::array;
using json_check::integer;
using json_check::need;
using json_check::number;
using json_check::text;
using nlohmann::json;

namespace {
constexpr const char* kFormat = "tamoe.cost_model";
constexpr int kVersion = 1;

}  // namespace

json CostModel::to_json() const {
  json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["source"] = source_;
  j["nranks"] = nranks_;
  j["self_bw_gbps"] = self_bw_gbps_;
  j["latency_overlap"] = latency_overlap_;
  j["self_on_ingress"] = self_on_ingress_;
  j["curve_key"] = curve_key_ == CurveKey::message ? "message" : "rank_volume";
  json ranks = json::array();
  for (int r = 0; r < nranks_; ++r) ranks.push_back({{"node", node_[r]}, {"leaf", leaf_[r]}});
  j["ranks"] = ranks;
  json verts = json::array();
  for (int v = nranks_; v < nvertices(); ++v)
    verts.push_back({{"name", vertices_[v].name}, {"kind", vertices_[v].kind}});
  j["elements"] = verts;
  json ls = json::array();
  for (const Link& l : links_) {
    json o = {{"name", l.name},
              {"from", vertices_[l.from].name},
              {"to", vertices_[l.to].name},
              {"bw_gbps", l.bw_gbps},
              {"lat_us", l.lat_us}};
    if (!l.bw_curve.empty()) o["bw_curve"] = l.bw_curve;
    ls.push_back(o);
  }
  j["links"] = ls;
  json routes = json::array();
  for (int i = 0; i < nranks_; ++i)
    for (int k = 0; k < nranks_; ++k)
      if (explicit_[static_cast<size_t>(i) * nranks_ + k])
        routes.push_back(
            {{"from", i}, {"to", k}, {"links", routes_[static_cast<size_t>(i) * nranks_ + k]}});
  if (!routes.empty()) j["routes"] = routes;
  json pc = json::array();
  for (const ProbeClass& c : probe_classes_)
    pc.push_back({{"name", c.name},
                  {"lat_us", c.lat_us},
                  {"bw_gbps", c.bw_gbps},
                  {"fit_rel_err", c.fit_rel_err},
                  {"pairs", c.pairs}});
  if (!pc.empty()) j["probe_classes"] = pc;
  return j;
}

CostModel CostModel::from_json(const json& j, const std::string& where) {
  json_check::fields(
      j, where,
      {"format", "version", "source", "nranks", "self_bw_gbps", "latency_overlap",
       "self_on_ingress", "curve_key", "ranks", "elements", "links", "routes", "probe_classes"});
  std::string fmt = text(need(j, "format", where), where + ".format");
  if (fmt != kFormat)
    fail(Status::invalid_input, where + ".format", std::string("\"") + kFormat + "\"",
         "\"" + fmt + "\"");
  int ver = integer(need(j, "version", where), where + ".version");
  if (ver != kVersion)
    fail(Status::invalid_input, where + ".version", std::to_string(kVersion), std::to_string(ver));
  int P = integer(need(j, "nranks", where), where + ".nranks");
  if (P <= 0)
    fail(Status::invalid_input, where + ".nranks", "a positive rank count", std::to_string(P));
  CostModel m(P);
  if (j.contains("source")) m.source_ = text(j["source"], where + ".source");
  if (j.contains("self_bw_gbps")) {
    double v = number(j["self_bw_gbps"], where + ".self_bw_gbps");
    if (v < 0)
      fail(Status::invalid_input, where + ".self_bw_gbps", "a non-negative bandwidth", str(v));
    m.self_bw_gbps_ = v;
  }
  if (j.contains("latency_overlap")) {
    double v = number(j["latency_overlap"], where + ".latency_overlap");
    if (v < 0 || v > 1)
      fail(Status::invalid_input, where + ".latency_overlap", "a number in [0, 1]", str(v));
    m.latency_overlap_ = v;
  }
  if (j.contains("self_on_ingress")) {
    if (!j["self_on_ingress"].is_boolean())
      fail(Status::invalid_input, where + ".self_on_ingress", "true or false",
           j["self_on_ingress"].dump());
    m.self_on_ingress_ = j["self_on_ingress"].get<bool>();
  }
  if (j.contains("curve_key")) {
    std::string k = text(j["curve_key"], where + ".curve_key");
    if (k != "message" && k != "rank_volume")
      fail(Status::invalid_input, where + ".curve_key", "\"message\" or \"rank_volume\"",
           "\"" + k + "\"");
    m.curve_key_ = k == "message" ? CurveKey::message : CurveKey::rank_volume;
  }
  if (j.contains("ranks")) {
    const json& rs = j["ranks"];
    if (!rs.is_array() || static_cast<int>(rs.size()) != P)
      fail(Status::invalid_input, where + ".ranks",
           str("an array of ", P, " rank locations (nranks)"),
           rs.is_array() ? str(rs.size(), " entries") : std::string(rs.type_name()));
    for (int r = 0; r < P; ++r) {
      std::string w = str(where, ".ranks[", r, "]");
      json_check::fields(rs[r], w, {"node", "leaf"});
      int node = integer(need(rs[r], "node", w), w + ".node");
      int leaf = rs[r].contains("leaf") ? integer(rs[r]["leaf"], w + ".leaf") : 0;
      if (node < 0 || leaf < 0)
        fail(Status::invalid_input, w, "non-negative node and leaf", rs[r].dump());
      m.set_location(r, node, leaf);
    }
  }
  if (j.contains("elements")) {
    const json& es = *array(j["elements"], where + ".elements");
    for (size_t k = 0; k < es.size(); ++k) {
      std::string w = str(where, ".elements[", k, "]");
      json_check::fields(es[k], w, {"name", "kind"});
      std::string name = text(need(es[k], "name", w), w + ".name");
      if (m.find_vertex(name) >= 0)
        fail(Status::invalid_input, w + ".name", "a unique name", "'" + name + "' again");
      m.add_vertex(name, es[k].contains("kind") ? text(es[k]["kind"], w + ".kind") : "element");
    }
  }
  const json& ls = *array(need(j, "links", where), where + ".links");
  for (size_t k = 0; k < ls.size(); ++k) {
    std::string w = str(where, ".links[", k, "]");
    json_check::fields(ls[k], w, {"name", "from", "to", "bw_gbps", "lat_us", "bw_curve"});
    auto vertex = [&](const char* key) {
      std::string n = text(need(ls[k], key, w), w + "." + key);
      int v = m.find_vertex(n);
      if (v < 0)
        fail(Status::invalid_input, w + "." + key, "the name of a rank or element", "'" + n + "'");
      return v;
    };
    int from = vertex("from"), to = vertex("to");
    double bw = number(need(ls[k], "bw_gbps", w), w + ".bw_gbps");
    if (bw <= 0) fail(Status::invalid_input, w + ".bw_gbps", "a positive bandwidth", str(bw));
    double lat = ls[k].contains("lat_us") ? number(ls[k]["lat_us"], w + ".lat_us") : 0.0;
    if (lat < 0) fail(Status::invalid_input, w + ".lat_us", "a non-negative latency", str(lat));
    if (from == to)
      fail(Status::invalid_input, w, "a link between two different vertices", "a self loop");
    int id = m.add_link(from, to, bw, lat,
                        ls[k].contains("name") ? text(ls[k]["name"], w + ".name") : "");
    if (ls[k].contains("bw_curve")) {
      const json& cv = ls[k]["bw_curve"];
      if (!cv.is_array())
        fail(Status::invalid_input, w + ".bw_curve", "an array of [bytes, GB/s] pairs",
             cv.type_name());
      std::vector<std::pair<double, double>> curve;
      for (size_t q = 0; q < cv.size(); ++q) {
        std::string wq = str(w, ".bw_curve[", q, "]");
        if (!cv[q].is_array() || cv[q].size() != 2)
          fail(Status::invalid_input, wq, "a [bytes, GB/s] pair", cv[q].dump());
        curve.push_back({number(cv[q][0], wq), number(cv[q][1], wq)});
      }
      try {
        m.set_bw_curve(id, curve);
      } catch (const Error& e) {
        fail(Status::invalid_input, w + ".bw_curve", e.what());
      }
    }
  }
  if (j.contains("routes")) {
    const json& rs = *array(j["routes"], where + ".routes");
    for (size_t k = 0; k < rs.size(); ++k) {
      std::string w = str(where, ".routes[", k, "]");
      json_check::fields(rs[k], w, {"from", "to", "links"});
      std::vector<int> ids;
      const json& lk = need(rs[k], "links", w);
      if (!lk.is_array())
        fail(Status::invalid_input, w + ".links", "an array of link ids", lk.type_name());
      for (const auto& x : lk) ids.push_back(integer(x, w + ".links"));
      try {
        m.set_route(integer(need(rs[k], "from", w), w + ".from"),
                    integer(need(rs[k], "to", w), w + ".to"), ids);
      } catch (const Error& e) {
        fail(Status::invalid_input, w, e.what());
      }
    }
  }
  if (j.contains("probe_classes")) {
    const json& pcs = *array(j["probe_classes"], where + ".probe_classes");
    for (size_t k = 0; k < pcs.size(); ++k) {
      std::string w = str(where, ".probe_classes[", k, "]");
      json_check::fields(pcs[k], w, {"name", "lat_us", "bw_gbps", "fit_rel_err", "pairs"});
      ProbeClass c;
      c.name = text(need(pcs[k], "name", w), w + ".name");
      c.lat_us = number(need(pcs[k], "lat_us", w), w + ".lat_us");
      c.bw_gbps = number(need(pcs[k], "bw_gbps", w), w + ".bw_gbps");
      if (pcs[k].contains("fit_rel_err"))
        c.fit_rel_err = number(pcs[k]["fit_rel_err"], w + ".fit_rel_err");
      if (pcs[k].contains("pairs")) c.pairs = integer(pcs[k]["pairs"], w + ".pairs");
      m.probe_classes_.push_back(c);
    }
  }
  m.validate(where);
  return m;
}

void CostModel::save(const std::string& path) const {
  json_check::save_file(to_json(), path);
}

CostModel CostModel::load(const std::string& path) {
  return from_json(json_check::load_file(path, "cost model"), path);
}

}  // namespace tamoe::topo
