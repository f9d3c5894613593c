// Every TAMOE_* parameter, in one place. Add new tunables here, nowhere else.
#include "runtime/params.h"

namespace tamoe {

namespace {
ParamSpec spec(const char* name, ParamType type, const char* def, const char* desc,
               std::vector<std::string> choices = {}, double min = -1e300, double max = 1e300) {
  ParamSpec s;
  s.name = name;
  s.type = type;
  s.default_value = def;
  s.description = desc;
  s.choices = std::move(choices);
  s.min = min;
  s.max = max;
  return s;
}
}  // namespace

void define_builtin_params(Params& p) {
  using T = ParamType;
  p.define(spec("TAMOE_LOG", T::choice, "warn", "log level",
                {"none", "error", "warn", "info", "debug", "trace"}));
  p.define(spec("TAMOE_LOG_SUBSYS", T::string, "all",
                "comma-separated subsystems to log (all, base, topo, probe, plan, route, coll, "
                "kernels, train)"));
  p.define(spec("TAMOE_LOG_FILE", T::string, "",
                "write log lines to this file instead of stderr (%r = rank)"));
  p.define(spec("TAMOE_CONF_FILE", T::string, "", "parameter file with lines NAME = VALUE"));
  p.define(spec("TAMOE_VIRTUAL_NODES", T::integer, "0",
                "split each physical node into this many virtual nodes (0 = off); ranks per node "
                "must divide evenly",
                {}, 0, 1 << 20));
  p.define(spec("TAMOE_TOPO_FILE", T::string, "",
                "load the node topology from this hwloc XML file instead of discovering it"));
  p.define(spec("TAMOE_TOPO_SYNTHETIC", T::string, "",
                "use this hwloc synthetic topology description instead of discovering"));
  p.define(spec("TAMOE_CLUSTER_FILE", T::string, "",
                "cluster description JSON (switches, links, oversubscription)"));
  p.define(
      spec("TAMOE_COST_MODEL_FILE", T::string, "", "load this cost model JSON instead of probing"));
  p.define(spec("TAMOE_PROBE_BUDGET_S", T::real, "60", "time budget of the probe in seconds", {},
                0.01, 1e6));
  p.define(spec("TAMOE_PROBE_MAX_PAIRS", T::integer, "64",
                "pairs sampled per link class by the ping-pong probe (not all pairs at scale)", {},
                1, 1 << 30));
  p.define(spec("TAMOE_PROBE_ITERS", T::integer, "20",
                "timed repetitions per probe point (median kept)", {}, 1, 1000000));
  p.define(spec("TAMOE_PROBE_MAX_BYTES", T::integer, "4194304",
                "largest message of the probe sweeps in bytes", {}, 1, 1LL << 34));
  p.define(spec("TAMOE_A2A_ALGO", T::string, "auto",
                "all-to-all algorithm: auto (cost model), mpi, pairwise, hier, hier_inter_first, "
                "or rules ALGO@LO-HI by mean bytes per pair, e.g. hier@0-4K,mpi@4K- "
                "(docs/collectives.md)"));
  p.define(spec("TAMOE_DISPATCH_DIRECT_BYTES", T::integer, "8388608",
                "device dispatch/combine on flat NCCL: smallest mean (rank, rank, expert) block in "
                "bytes that is sent straight into the expert layout, one send/recv per block; "
                "smaller blocks go one message per peer plus a reorder copy (docs/collectives.md)",
                {}, 0, 9.2e18));
  p.define(spec("TAMOE_SEED", T::integer, "12345", "seed for sampling and synthetic data", {}, 0,
                9.2e18));
}

}  // namespace tamoe
