// Cluster description files: a hand-written JSON account of a cluster (nodes and their ranks,
// NICs, leaf/rail switches, spines, oversubscription, extra links), format "tamoe.cluster"
// version 1, turned into a CostModel. The schema, with a full example, is in
// docs/cluster_description.md.
//
// Ranks are numbered node by node in file order. A description is validated in full: every
// error is a tamoe::Error (Status::invalid_input) whose message starts with the file and the JSON
// path of the offending field ("c.json: nodes[2].nic.bw_gbps: expected a positive bandwidth in
// GB/s, found -50"), and the built model must connect every pair of ranks.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "topology/cost_model.h"
#include "topology/synthetic.h"

namespace tamoe::topo {

inline constexpr const char* kClusterFormat = "tamoe.cluster";
inline constexpr int kClusterVersion = 1;

// Builds the cost model a description describes. `where` names the source in errors (a path).
// expected_nranks >= 0 also checks the total rank count against the job's.
CostModel cluster_description_from_json(const nlohmann::json& j,
                                        const std::string& where = "cluster description",
                                        int expected_nranks = -1);

// Reads and builds path. A JSON syntax error or a number JSON cannot hold (1e999) is reported
// with the path of the field being read when it happened.
CostModel load_cluster_description(const std::string& path, int expected_nranks = -1);

// The description of a synthetic cluster: loading it gives the same predictions as
// make_synthetic(c). Serves as a template to edit and as a cross-check of both builders.
nlohmann::json synthetic_cluster_description(const SyntheticCluster& c);

}  // namespace tamoe::topo
