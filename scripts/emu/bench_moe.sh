#!/usr/bin/env bash
# One MoE layer's communication on the emulated cluster (docs/emulated_moe.md): for each
# configuration NODESxSLOTS:RATE, a private cluster of NODES namespaces with SLOTS ranks each and
# the inter-node links shaped to RATE runs tamoe-bench-moe, which probes the links, plans with the
# bound rho, and times the five variants (uniform / TA routing x flat / hierarchical all-to-all,
# plus plan-aware capacity) against the cost model's prediction.
#
#   scripts/emu/bench_moe.sh OUTDIR BINDIR [CONFIG...]
#       CONFIG defaults to 2x2:1gbit 2x2:200mbit 4x2:1gbit 4x2:200mbit
#   scripts/emu/bench_moe.sh summary OUTDIR...     markdown table over repeated runs
#
# BINDIR holds tamoe-bench-moe or is a build tree with bench/moe_layer/. Per configuration OUTDIR
# gets moe_TAG.txt (the table), moe_TAG.jsonl and model_TAG.json (the probed cost model), TAG =
# NxS_RATE. Environment: EMU_MOE_ARGS (extra tamoe-bench-moe options, later ones win; the
# defaults are --tokens 1024 --hidden 256 (128 above 2 nodes) --k 2 --rho 1.5 --plan-mode sym
# --iters 4 --rounds 3). Below 1 gbit the probe's
# sweep stops at 1 MiB so it stays within seconds. Exit: 77 when the machine cannot run the
# cluster, otherwise the first failing run's status.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/common.sh"

# bench_moe.sh summary OUTDIR...: a markdown table over repeated runs (median per variant of the
# runs' medians, and the range of the speedups), from their moe_*.jsonl.
if [ "${1:-}" = summary ]; then
  shift
  [ $# -ge 1 ] || {
    echo "bench_moe.sh summary: expected OUTDIR..., found none" >&2
    exit 2
  }
  exec python3 - "$@" <<'PY'
import glob, json, os, statistics as st, sys
rows = {}
for d in sys.argv[1:]:
    for f in sorted(glob.glob(os.path.join(d, "moe_*.jsonl"))):
        tag = os.path.basename(f)[4:-6]
        for line in open(f):
            j = json.loads(line)
            if j["kind"] == "variant":
                rows.setdefault((tag, j["variant"]), []).append(j)
print("| config | variant | runs | measured ms | predicted ms | speedup (runs) | predicted speedup | cross-node | drops |")
print("|---|---|---:|---:|---:|---|---:|---:|---:|")
for (tag, v), js in sorted(rows.items()):
    med = lambda k: st.median(x[k] for x in js)
    sp = sorted(x["speedup"] for x in js)
    print(f"| {tag} | {v} {js[0]['name']} | {len(js)} | {med('time_p50_ms'):.1f} | {med('predicted_ms'):.1f} "
          f"| {med('speedup'):.2f} ({', '.join(f'{s:.2f}' for s in sp)}) | {med('predicted_speedup'):.2f} "
          f"| {med('cross_node_share'):.3f} | {med('drop_share'):.3f} |")
PY
fi
[ $# -ge 2 ] || {
  echo "bench_moe.sh: expected OUTDIR BINDIR [CONFIG...], found $# argument(s)" >&2
  exit 2
}
out=$(mkdir -p "$1" && cd "$1" && pwd)
bindir=$(cd "$2" && pwd)
shift 2
bench=$(emu_find_bin bench_moe.sh "$bindir" tamoe-bench-moe bench/moe_layer)
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(2x2:1gbit 2x2:200mbit 4x2:1gbit 4x2:200mbit)

"$here/cluster.sh" check
cd "$out"
status=0
for c in "${configs[@]}"; do
  [[ $c =~ ^([0-9]+)x([0-9]+):([0-9a-z.]+)$ ]] || {
    echo "bench_moe.sh: CONFIG: expected NODESxSLOTS:RATE such as 2x2:200mbit, found '$c'" >&2
    exit 2
  }
  nodes=${BASH_REMATCH[1]} slots=${BASH_REMATCH[2]} rate=${BASH_REMATCH[3]}
  tag="${nodes}x${slots}_$rate"
  # H so that one uniform+flat step at 200 mbit takes ~0.5 s: with more nodes a larger share of
  # the copies leaves the node, and 4x2 at H=256 took 0.93 s.
  hidden=256
  [ "$nodes" -le 2 ] || hidden=128
  # --plan-mode sym: the ladder plan. The exact LP is degenerate on these graphs (any split of
  # the off-node share among remote ranks is optimal) and its vertex can give one remote rank
  # more than the uniform capacity, so TA + uniform capacity would drop off-node copies.
  args=(--tokens 1024 --hidden "$hidden" --k 2 --rho 1.5 --plan-mode sym --iters 4 --rounds 3)
  case $rate in
  *gbit | none) ;;
  *) args+=(--probe-max-bytes 1M) ;;
  esac
  # shellcheck disable=SC2206 # EMU_MOE_ARGS is a word list on purpose
  args+=(${EMU_MOE_ARGS:-} --save-model "model_$tag.json" --jsonl "moe_$tag.jsonl")
  rm -f "moe_$tag.jsonl"
  cmd=("$here/cluster.sh" run "$nodes" "$rate" --slots "$slots" --private --
    -np $((nodes * slots)) "$bench" "${args[@]}")
  echo "== $tag: ${cmd[*]}" | tee "moe_$tag.txt"
  start=$(date +%s)
  rc=0
  "${cmd[@]}" 2>&1 | grep -v 'setpgid' | tee -a "moe_$tag.txt" || rc=$?
  echo "== $tag: exit $rc, $(($(date +%s) - start)) s" | tee -a "moe_$tag.txt"
  [ "$rc" = 0 ] || [ "$status" != 0 ] || status=$rc
done
exit "$status"
