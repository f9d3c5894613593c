#include "topology/cluster_desc.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "runtime/error.h"

namespace tamoe::topo {

using nlohmann::json;

namespace {

// Bounds the rank count so sums cannot overflow an int; the cost model itself stores P*P routes,
// so real descriptions stay far below this.
constexpr int kMaxRanks = 1 << 20;

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
std::string at_index(const std::string& path, size_t k) {
  return str(path, "[", k, "]");
}
std::string shown(const json& j) {
  return j.dump() + " (" + j.type_name() + ")";
}
std::string in_quotes(const std::string& s) {
  return "'" + s + "'";
}

// Names of the first few candidates, for "expected one of ..." messages.
std::string name_list(const std::vector<std::string>& names) {
  std::string out;
  const size_t shown_max = 8;
  for (size_t k = 0; k < names.size() && k < shown_max; ++k) out += (k ? ", " : "") + names[k];
  if (names.size() > shown_max) out += str(", ... (", names.size(), " in all)");
  return out.empty() ? "none defined" : out;
}

// Reads typed fields; every error names the file and the JSON path of the field.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  std::string at(const std::string& path) const {
    return file_ + ": " + (path.empty() ? std::string("top level") : path);
  }
  [[noreturn]] void bad(const std::string& path, const std::string& expected,
                        const std::string& found) const {
    fail(Status::invalid_input, at(path), expected, found);
  }

  void object(const json& j, const std::string& path,
              std::initializer_list<const char*> allowed) const {
    if (!j.is_object()) bad(path, "an object", shown(j));
    for (auto it = j.begin(); it != j.end(); ++it) {
      bool known = false;
      for (const char* a : allowed) known = known || it.key() == a;
      if (known) continue;
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      bad(join(path, it.key()), "one of the fields " + list, "unknown field '" + it.key() + "'");
    }
  }
  const json* opt(const json& j, const char* key) const {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  }
  const json& need(const json& j, const char* key, const std::string& path,
                   const std::string& what) const {
    auto it = j.find(key);
    if (it == j.end()) bad(join(path, key), "a required field (" + what + ")", "no such field");
    return *it;
  }
  double number(const json& j, const std::string& path) const {
    if (!j.is_number()) bad(path, "a number", shown(j));
    double v = j.get<double>();
    if (!std::isfinite(v)) bad(path, "a finite number", str(v));
    return v;
  }
  double bandwidth(const json& j, const std::string& path) const {
    double v = number(j, path);
    if (v <= 0) bad(path, "a positive bandwidth in GB/s", str(v));
    return v;
  }
  double latency(const json& j, const std::string& path) const {
    double v = number(j, path);
    if (v < 0) bad(path, "a non-negative latency in microseconds", str(v));
    return v;
  }
  int integer(const json& j, const std::string& path, int lo, int hi) const {
    if (!j.is_number_integer()) bad(path, "an integer", shown(j));
    bool fits = j.is_number_unsigned() ? j.get<std::uint64_t>() <= static_cast<std::uint64_t>(hi)
                                       : j.get<std::int64_t>() >= lo && j.get<std::int64_t>() <= hi;
    if (!fits) bad(path, str("an integer in [", lo, ", ", hi, "]"), j.dump());
    return j.get<int>();
  }
  bool boolean(const json& j, const std::string& path) const {
    if (!j.is_boolean()) bad(path, "true or false", shown(j));
    return j.get<bool>();
  }
  std::string text(const json& j, const std::string& path) const {
    if (!j.is_string()) bad(path, "a string", shown(j));
    return j.get<std::string>();
  }
  // Names of nodes and switches become vertex names: "rank<i>" belongs to ranks and '/' joins a
  // node to its NICs ("n0/nic3").
  std::string name(const json& j, const std::string& path) const {
    std::string s = text(j, path);
    bool rank_like = s.size() > 4 && s.compare(0, 4, "rank") == 0 &&
                     s.find_first_not_of("0123456789", 4) == std::string::npos;
    if (s.empty() || s.find('/') != std::string::npos || rank_like)
      bad(path, "a non-empty name without '/' that is not rank<i>", in_quotes(s));
    return s;
  }

 private:
  std::string file_;
};

struct NodeDesc {
  std::string name, path;
  int ranks = 1;
  // Switch names: none (attached only through links), one for all NICs, or one per rank (rails).
  std::vector<std::string> leaves;
  double intra_bw_gbps = 0, intra_lat_us = 0;
  bool has_nic = false, nic_per_rank = true;
  double nic_bw_gbps = 0, nic_lat_us = 0;
};

struct SwitchDesc {
  std::string name, kind = "switch", path, uplink;
  double uplink_bw_gbps = -1;    // -1: sized from oversubscription
  double oversubscription = -1;  // -1: 1 unless uplink_bw_gbps is given
  double uplink_lat_us = 0;
};

struct LinkDesc {
  std::string from, to, name, path;
  double bw_gbps = 0, lat_us = 0;
  bool directed = false;
};

struct Desc {
  std::string description;
  std::vector<SwitchDesc> switches;
  std::vector<NodeDesc> nodes;
  std::vector<LinkDesc> links;
  double self_bw_gbps = 0;
  double latency_overlap = -1;  // -1: the cost model's default
  int nranks = 0;
};

void parse_switches(const Reader& r, const json& j, Desc& d) {
  const json* sw = r.opt(j, "switches");
  if (!sw) return;
  if (!sw->is_array()) r.bad("switches", "an array of switches", shown(*sw));
  for (size_t k = 0; k < sw->size(); ++k) {
    const json& e = (*sw)[k];
    SwitchDesc s;
    s.path = at_index("switches", k);
    r.object(e, s.path,
             {"name", "kind", "uplink", "uplink_bw_gbps", "oversubscription", "uplink_lat_us"});
    s.name = r.name(r.need(e, "name", s.path, "the switch's name"), join(s.path, "name"));
    if (const json* v = r.opt(e, "kind")) {
      s.kind = r.text(*v, join(s.path, "kind"));
      if (s.kind != "leaf" && s.kind != "rail" && s.kind != "spine" && s.kind != "core" &&
          s.kind != "switch")
        r.bad(join(s.path, "kind"), "one of leaf, rail, spine, core, switch", in_quotes(s.kind));
    }
    const json* up = r.opt(e, "uplink");
    if (up) s.uplink = r.text(*up, join(s.path, "uplink"));
    const json* bw = r.opt(e, "uplink_bw_gbps");
    const json* os = r.opt(e, "oversubscription");
    const json* lat = r.opt(e, "uplink_lat_us");
    if (!up && (bw || os || lat))
      r.bad(join(s.path, "uplink"),
            "a required field when uplink_bw_gbps, oversubscription or uplink_lat_us is given",
            "no such field");
    if (bw) s.uplink_bw_gbps = r.bandwidth(*bw, join(s.path, "uplink_bw_gbps"));
    if (os) {
      s.oversubscription = r.number(*os, join(s.path, "oversubscription"));
      if (s.oversubscription <= 0)
        r.bad(join(s.path, "oversubscription"), "a positive ratio of downlink to uplink capacity",
              str(s.oversubscription));
    }
    if (bw && os)
      r.bad(join(s.path, "oversubscription"), "either uplink_bw_gbps or oversubscription",
            str("both (uplink_bw_gbps ", s.uplink_bw_gbps, ", oversubscription ",
                s.oversubscription, ")"));
    if (lat) s.uplink_lat_us = r.latency(*lat, join(s.path, "uplink_lat_us"));
    d.switches.push_back(s);
  }
}

void parse_nodes(const Reader& r, const json& j, Desc& d) {
  const json& ns = r.need(j, "nodes", "", "the list of nodes, ranks numbered in this order");
  if (!ns.is_array() || ns.empty()) r.bad("nodes", "a non-empty array of nodes", shown(ns));
  for (size_t k = 0; k < ns.size(); ++k) {
    const json& e = ns[k];
    NodeDesc n;
    n.path = at_index("nodes", k);
    r.object(e, n.path, {"name", "count", "ranks", "leaf", "intra_bw_gbps", "intra_lat_us", "nic"});
    std::string name = r.name(r.need(e, "name", n.path, "the node's name, or a prefix with count"),
                              join(n.path, "name"));
    int count = 0;  // 0: a single node named `name`
    if (const json* c = r.opt(e, "count"))
      count = r.integer(*c, join(n.path, "count"), 1, kMaxRanks);
    n.ranks = r.integer(r.need(e, "ranks", n.path, "ranks on the node"), join(n.path, "ranks"), 1,
                        kMaxRanks);
    if (const json* v = r.opt(e, "intra_bw_gbps"))
      n.intra_bw_gbps = r.bandwidth(*v, join(n.path, "intra_bw_gbps"));
    else if (n.ranks > 1)
      r.need(e, "intra_bw_gbps", n.path, "bandwidth of each rank's port into the node fabric");
    if (const json* v = r.opt(e, "intra_lat_us"))
      n.intra_lat_us = r.latency(*v, join(n.path, "intra_lat_us"));
    if (const json* nic = r.opt(e, "nic")) {
      std::string p = join(n.path, "nic");
      r.object(*nic, p, {"per_rank", "bw_gbps", "lat_us"});
      n.has_nic = true;
      if (const json* v = r.opt(*nic, "per_rank"))
        n.nic_per_rank = r.boolean(*v, join(p, "per_rank"));
      n.nic_bw_gbps = r.bandwidth(r.need(*nic, "bw_gbps", p, "the NIC's bandwidth in GB/s"),
                                  join(p, "bw_gbps"));
      if (const json* v = r.opt(*nic, "lat_us")) n.nic_lat_us = r.latency(*v, join(p, "lat_us"));
    }
    if (const json* lf = r.opt(e, "leaf")) {
      std::string p = join(n.path, "leaf");
      if (lf->is_array()) {
        if (!n.has_nic || !n.nic_per_rank || static_cast<int>(lf->size()) != n.ranks)
          r.bad(p, str("a switch name, or one per rank (", n.ranks, ") with a per-rank nic"),
                str("an array of ", lf->size(),
                    n.has_nic && n.nic_per_rank ? "" : " without per-rank nic"));
        for (size_t q = 0; q < lf->size(); ++q)
          n.leaves.push_back(r.text((*lf)[q], at_index(p, q)));
      } else {
        n.leaves.push_back(r.text(*lf, p));
      }
      if (!n.has_nic)
        r.bad(join(n.path, "nic"), "a required field when leaf is given (how ranks reach it)",
              "no such field");
    }
    const int copies = std::max(count, 1);
    if (static_cast<long long>(copies) * n.ranks + d.nranks > kMaxRanks)
      r.bad(n.path, str("at most ", kMaxRanks, " ranks in all"),
            str(static_cast<long long>(copies) * n.ranks + d.nranks));
    for (int c = 0; c < copies; ++c) {
      // Group members are named by their node index in the whole cluster, so several groups can
      // share a prefix ("gpu" x2 then "gpu" x2 gives gpu0..gpu3).
      n.name = count > 0 ? name + std::to_string(d.nodes.size()) : name;
      d.nodes.push_back(n);
      d.nranks += n.ranks;
    }
  }
}

void parse_links(const Reader& r, const json& j, Desc& d) {
  const json* ls = r.opt(j, "links");
  if (!ls) return;
  if (!ls->is_array()) r.bad("links", "an array of links", shown(*ls));
  for (size_t k = 0; k < ls->size(); ++k) {
    const json& e = (*ls)[k];
    LinkDesc l;
    l.path = at_index("links", k);
    r.object(e, l.path, {"from", "to", "bw_gbps", "lat_us", "directed", "name"});
    l.from = r.text(r.need(e, "from", l.path, "an element's name"), join(l.path, "from"));
    l.to = r.text(r.need(e, "to", l.path, "an element's name"), join(l.path, "to"));
    l.bw_gbps = r.bandwidth(r.need(e, "bw_gbps", l.path, "the link's bandwidth in GB/s"),
                            join(l.path, "bw_gbps"));
    if (const json* v = r.opt(e, "lat_us")) l.lat_us = r.latency(*v, join(l.path, "lat_us"));
    if (const json* v = r.opt(e, "directed")) l.directed = r.boolean(*v, join(l.path, "directed"));
    if (const json* v = r.opt(e, "name")) l.name = r.text(*v, join(l.path, "name"));
    if (l.from == l.to)
      r.bad(l.path, "a link between two different elements", in_quotes(l.from) + " to itself");
    d.links.push_back(l);
  }
}

Desc parse(const Reader& r, const json& j) {
  r.object(j, "",
           {"format", "version", "description", "nodes", "switches", "links", "self_bw_gbps",
            "latency_overlap"});
  std::string fmt = r.text(r.need(j, "format", "", str("\"", kClusterFormat, "\"")), "format");
  if (fmt != kClusterFormat) r.bad("format", str("\"", kClusterFormat, "\""), "\"" + fmt + "\"");
  const json& ver = r.need(j, "version", "", str(kClusterVersion));
  if (!ver.is_number_integer() || ver.get<std::int64_t>() != kClusterVersion)
    r.bad("version", str(kClusterVersion), ver.dump());
  Desc d;
  if (const json* v = r.opt(j, "description")) d.description = r.text(*v, "description");
  if (const json* v = r.opt(j, "self_bw_gbps")) d.self_bw_gbps = r.bandwidth(*v, "self_bw_gbps");
  if (const json* v = r.opt(j, "latency_overlap")) {
    d.latency_overlap = r.number(*v, "latency_overlap");
    if (d.latency_overlap < 0 || d.latency_overlap > 1)
      r.bad("latency_overlap", "a number in [0, 1]", str(d.latency_overlap));
  }
  parse_switches(r, j, d);
  parse_nodes(r, j, d);
  parse_links(r, j, d);
  return d;
}

// Names unique, references resolved, uplinks acyclic. Returns the switches ordered so that each
// comes before the switch it uplinks to (children first), for sizing uplinks bottom-up.
std::vector<int> check_references(const Reader& r, const Desc& d,
                                  const std::map<std::string, int>& switch_index) {
  std::map<std::string, std::string> owner;  // name -> path of the entry that defined it
  auto claim = [&](const std::string& name, const std::string& path) {
    auto [it, fresh] = owner.emplace(name, path);
    if (!fresh)
      r.bad(join(path, "name"), "a name unique among nodes and switches",
            in_quotes(name) + ", already the name of " + it->second);
  };
  for (const SwitchDesc& s : d.switches) claim(s.name, s.path);
  for (const NodeDesc& n : d.nodes) claim(n.name, n.path);

  std::vector<std::string> switch_names;
  for (const SwitchDesc& s : d.switches) switch_names.push_back(s.name);
  for (const NodeDesc& n : d.nodes)
    for (size_t q = 0; q < n.leaves.size(); ++q)
      if (!switch_index.count(n.leaves[q]))
        r.bad(n.leaves.size() > 1 ? at_index(join(n.path, "leaf"), q) : join(n.path, "leaf"),
              "the name of a switch (" + name_list(switch_names) + ")", in_quotes(n.leaves[q]));
  for (const SwitchDesc& s : d.switches)
    if (!s.uplink.empty() && !switch_index.count(s.uplink))
      r.bad(join(s.path, "uplink"), "the name of a switch (" + name_list(switch_names) + ")",
            in_quotes(s.uplink));

  // Follow uplinks from every switch; meeting a switch of the current walk again is a cycle.
  const int S = static_cast<int>(d.switches.size());
  std::vector<int> state(S, 0), height(S, 0);  // state: 0 new, 1 on the current walk, 2 done
  for (int s0 = 0; s0 < S; ++s0) {
    std::vector<int> walk;
    int s = s0;
    while (s >= 0 && state[s] == 0) {
      state[s] = 1;
      walk.push_back(s);
      s = d.switches[s].uplink.empty() ? -1 : switch_index.at(d.switches[s].uplink);
    }
    if (s >= 0 && state[s] == 1) {
      std::string cycle;
      auto from = std::find(walk.begin(), walk.end(), s);
      for (auto it = from; it != walk.end(); ++it) cycle += d.switches[*it].name + " -> ";
      r.bad(join(d.switches[s].path, "uplink"), "switches whose uplinks form a tree (no cycle)",
            "the cycle " + cycle + d.switches[s].name);
    }
    // Distance to the root of the tree: a switch's children are one further away.
    int base = s >= 0 ? height[s] : -1;
    for (auto it = walk.rbegin(); it != walk.rend(); ++it) {
      height[*it] = ++base;
      state[*it] = 2;
    }
  }
  std::vector<int> order(S);
  for (int s = 0; s < S; ++s) order[s] = s;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return height[a] > height[b]; });
  return order;
}

CostModel build(const Reader& r, const Desc& d, const std::string& where) {
  std::map<std::string, int> switch_index;
  for (size_t s = 0; s < d.switches.size(); ++s)
    switch_index[d.switches[s].name] = static_cast<int>(s);
  std::vector<int> order = check_references(r, d, switch_index);

  CostModel m(d.nranks);
  m.set_source("cluster description " + where +
               (d.description.empty() ? std::string() : " (" + d.description + ")"));
  if (d.self_bw_gbps > 0) m.set_self_bw_gbps(d.self_bw_gbps);
  if (d.latency_overlap >= 0) m.set_latency_overlap(d.latency_overlap);

  // Switch vertices; leaf ids (for pair levels) go densely to switches that have NICs attached.
  const int S = static_cast<int>(d.switches.size());
  std::vector<int> vertex(S), leaf_id(S, -1);
  std::vector<double> down_gbps(S, 0.0);
  for (int s = 0; s < S; ++s) vertex[s] = m.add_vertex(d.switches[s].name, d.switches[s].kind);
  int nleaf_ids = 0;
  for (const NodeDesc& n : d.nodes)
    for (size_t q = 0; q < n.leaves.size(); ++q) {
      int s = switch_index.at(n.leaves[q]);
      // A shared NIC or a single leaf carries all of the node's NICs to one switch.
      down_gbps[s] += n.nic_bw_gbps * (n.nic_per_rank && n.leaves.size() == 1 ? n.ranks : 1);
    }
  for (int s = 0; s < S; ++s)
    if (down_gbps[s] > 0) leaf_id[s] = nleaf_ids++;

  // Uplinks, children first so a parent's downlink capacity includes its children's uplinks.
  for (int s : order) {
    const SwitchDesc& sw = d.switches[s];
    if (sw.uplink.empty()) continue;
    double up = sw.uplink_bw_gbps;
    if (up < 0) {
      if (down_gbps[s] <= 0)
        r.bad(sw.path,
              "nodes or switches below it to size its uplink by oversubscription (or "
              "uplink_bw_gbps)",
              "nothing attached to " + in_quotes(sw.name));
      up = down_gbps[s] / (sw.oversubscription > 0 ? sw.oversubscription : 1.0);
    }
    int parent = switch_index.at(sw.uplink);
    down_gbps[parent] += up;
    m.connect(vertex[s], vertex[parent], up, up, sw.uplink_lat_us);
  }

  std::vector<int> node_of_rank;
  int rank = 0;
  for (size_t k = 0; k < d.nodes.size(); ++k) {
    const NodeDesc& n = d.nodes[k];
    int fabric = m.add_vertex(n.name, "fabric");
    int shared_nic = -1;
    if (n.has_nic && !n.nic_per_rank) {
      shared_nic = m.add_vertex(n.name + "/nic", "nic");
      if (!n.leaves.empty())
        m.connect(shared_nic, vertex[switch_index.at(n.leaves[0])], n.nic_bw_gbps, n.nic_bw_gbps,
                  n.nic_lat_us);
    }
    for (int local = 0; local < n.ranks; ++local, ++rank) {
      node_of_rank.push_back(static_cast<int>(k));
      int leaf = -1;
      if (!n.leaves.empty())
        leaf = leaf_id[switch_index.at(n.leaves[n.leaves.size() > 1 ? local : 0])];
      // A node reached only through explicit links shares no leaf with anyone.
      m.set_location(rank, static_cast<int>(k), leaf >= 0 ? leaf : nleaf_ids + static_cast<int>(k));
      if (n.ranks > 1)
        m.connect(rank, fabric, n.intra_bw_gbps, n.intra_bw_gbps, n.intra_lat_us / 2);
      if (!n.has_nic) continue;
      if (n.nic_per_rank) {
        // The NIC's own rate sits on rank->nic; nic->switch is the cable at the same rate (as in
        // make_synthetic, so both builders agree).
        int nic = m.add_vertex(n.name + "/nic" + std::to_string(local), "nic");
        m.connect(rank, nic, n.nic_bw_gbps, n.nic_bw_gbps, n.nic_lat_us / 2);
        if (!n.leaves.empty())
          m.connect(nic, vertex[switch_index.at(n.leaves[n.leaves.size() > 1 ? local : 0])],
                    n.nic_bw_gbps, n.nic_bw_gbps, n.nic_lat_us / 2);
      } else {
        // Ranks reach a shared NIC over the host (PCIe), assumed no slower than the NIC itself.
        m.connect(rank, shared_nic, n.nic_bw_gbps, n.nic_bw_gbps, 0);
      }
    }
  }

  for (const LinkDesc& l : d.links) {
    auto resolve = [&](const std::string& name, const char* key) {
      int v = m.find_vertex(name);
      if (v < 0)
        r.bad(join(l.path, key),
              "the name of a node, switch, NIC (<node>/nic, <node>/nic<k>) or rank (rank<i>)",
              in_quotes(name));
      return v;
    };
    int from = resolve(l.from, "from"), to = resolve(l.to, "to");
    m.add_link(from, to, l.bw_gbps, l.lat_us, l.name);
    if (!l.directed)
      m.add_link(to, from, l.bw_gbps, l.lat_us, l.name.empty() ? "" : l.name + " back");
  }

  for (int i = 0; i < d.nranks; ++i)
    for (int j = 0; j < d.nranks; ++j) {
      if (i == j) continue;
      try {
        m.route(i, j);
      } catch (const Error&) {
        const NodeDesc& ni = d.nodes[node_of_rank[i]];
        const NodeDesc& nj = d.nodes[node_of_rank[j]];
        r.bad(nj.path,
              str("a path from rank ", i, " (node ", ni.name, ") to rank ", j, " (node ", nj.name,
                  ")"),
              "none: the pair is unreachable (attach both nodes to connected switches with leaf "
              "and nic, or add links)");
      }
    }
  return m;
}

// Tracks the JSON path the parser is at, so a syntax error or an out-of-range number in a file
// can be reported with the field it happened in.
class PathTracker {
 public:
  bool on_event(json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
        levels_.push_back({false, 0, ""});
        break;
      case json::parse_event_t::array_start:
        levels_.push_back({true, 0, ""});
        break;
      case json::parse_event_t::key:
        levels_.back().key = parsed.get<std::string>();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        levels_.pop_back();
        value_done();
        break;
      case json::parse_event_t::value:
        value_done();
        break;
    }
    return true;
  }
  std::string path() const {
    std::string p;
    for (const Level& l : levels_) {
      if (l.array)
        p += str("[", l.count, "]");
      else if (!l.key.empty())
        p = join(p, l.key);
    }
    return p;
  }

 private:
  void value_done() {
    if (!levels_.empty() && levels_.back().array) ++levels_.back().count;
  }
  struct Level {
    bool array;
    size_t count;  // elements completed so far
    std::string key;
  };
  std::vector<Level> levels_;
};

}  // namespace

CostModel cluster_description_from_json(const json& j, const std::string& where,
                                        int expected_nranks) {
  Reader r(where);
  Desc d = parse(r, j);
  if (expected_nranks >= 0 && d.nranks != expected_nranks)
    r.bad("nodes", str(expected_nranks, " ranks in all (the job's rank count)"),
          str(d.nranks, " ranks on ", d.nodes.size(), " nodes"));
  return build(r, d, where);
}

CostModel load_cluster_description(const std::string& path, int expected_nranks) {
  std::ifstream in(path);
  if (!in)
    fail(Status::invalid_input, path, "a readable cluster description file", "cannot open it");
  std::stringstream text;
  text << in.rdbuf();
  PathTracker tracker;
  json j;
  try {
    j = json::parse(text.str(), [&tracker](int, json::parse_event_t ev, json& parsed) {
      return tracker.on_event(ev, parsed);
    });
  } catch (const json::exception& e) {
    std::string p = tracker.path();
    fail(Status::invalid_input, path + ": " + (p.empty() ? std::string("top level") : p),
         "valid JSON with finite numbers", e.what());
  }
  return cluster_description_from_json(j, path, expected_nranks);
}

json synthetic_cluster_description(const SyntheticCluster& c) {
  json d = {{"format", kClusterFormat},
            {"version", kClusterVersion},
            {"description", "synthetic " + to_string(c)}};
  const int per_leaf = c.nodes_per_leaf > 0 ? c.nodes_per_leaf : std::max(c.nodes, 1);
  const int nleaves = (c.nodes + per_leaf - 1) / per_leaf;
  json switches = json::array(), nodes = json::array();
  for (int s = 0; s < nleaves; ++s) {
    json leaf = {{"name", "leaf" + std::to_string(s)}, {"kind", "leaf"}};
    if (nleaves > 1) {
      leaf["uplink"] = "spine";
      leaf["oversubscription"] = c.oversubscription;
      leaf["uplink_lat_us"] = c.switch_lat_us;
    }
    switches.push_back(leaf);
    nodes.push_back(
        {{"name", "node"},
         {"count", std::min(per_leaf, c.nodes - s * per_leaf)},
         {"ranks", c.ranks_per_node},
         {"leaf", "leaf" + std::to_string(s)},
         {"intra_bw_gbps", c.intra_bw_gbps},
         {"intra_lat_us", c.intra_lat_us},
         {"nic",
          {{"per_rank", c.nic_per_rank}, {"bw_gbps", c.nic_bw_gbps}, {"lat_us", c.nic_lat_us}}}});
  }
  if (nleaves > 1) switches.push_back({{"name", "spine"}, {"kind", "spine"}});
  d["switches"] = switches;
  d["nodes"] = nodes;
  return d;
}

}  // namespace tamoe::topo
