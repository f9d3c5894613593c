#!/usr/bin/env bash
# Probe the emulated cluster and compare the cost model's alltoallv predictions with measurements,
# at one or more inter-node rates. For each RATE: bring up NODES x SLOTS, run tamoe-probe (model
# JSON + summary), then tamoe-bench-model with that model (table + JSON Lines).
#
#   scripts/emu/measure.sh OUTDIR BINDIR RATE...        e.g. out build 1gbit 200mbit
#
# BINDIR holds tamoe-probe and tamoe-bench-model (or is a build tree with src/tools/ and
# bench/model/). Environment: EMU_NODES (2), EMU_SLOTS (2), EMU_PROBE_ARGS (extra tamoe-probe
# options), EMU_BENCH_SIZES ("16K 64K 256K 1M 4M"), EMU_BENCH_ITERS (10). Slow links get a
# smaller probe (--max-bytes 1M) and fewer bench iterations, so 200mbit stays within minutes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/common.sh"
[ $# -ge 3 ] || {
  echo "measure.sh: expected OUTDIR BINDIR RATE..., found $# argument(s)" >&2
  exit 2
}
out=$(mkdir -p "$1" && cd "$1" && pwd)
bindir=$(cd "$2" && pwd)
shift 2
probe=$(emu_find_bin measure.sh "$bindir" tamoe-probe src/tools)
bench=$(emu_find_bin measure.sh "$bindir" tamoe-bench-model bench/model)
nodes=${EMU_NODES:-2}
slots=${EMU_SLOTS:-2}
np=$((nodes * slots))
sizes=${EMU_BENCH_SIZES:-16K 64K 256K 1M 4M}

"$here/cluster.sh" check
trap '"$here/cluster.sh" down' EXIT
cd "$out"
for rate in "$@"; do
  tag="${nodes}x${slots}_$rate"
  probe_args=() iters=${EMU_BENCH_ITERS:-10}
  # Below 1 gbit a 4 MiB ping-pong sweep takes seconds per point: cap the sweep instead.
  case $rate in
  *gbit | none) ;;
  *) probe_args=(--max-bytes 1M) iters=${EMU_BENCH_ITERS:-5} ;;
  esac
  # shellcheck disable=SC2206 # EMU_PROBE_ARGS is a word list on purpose
  probe_args+=(${EMU_PROBE_ARGS:-})
  echo "== $tag =="
  "$here/cluster.sh" up "$nodes" "$rate" | tee "cluster_$tag.txt"
  echo "+ cluster.sh run $nodes --slots $slots -- -np $np tamoe-probe --out model_$tag.json" \
    "--json probe_$tag.json ${probe_args[*]}" | tee "probe_$tag.txt"
  "$here/cluster.sh" run "$nodes" --slots "$slots" -- -np "$np" "$probe" \
    --out "model_$tag.json" --json "probe_$tag.json" "${probe_args[@]}" 2>&1 |
    grep -v 'setpgid' | tee -a "probe_$tag.txt"
  # shellcheck disable=SC2086 # sizes is a word list
  echo "+ cluster.sh run $nodes --slots $slots -- -np $np tamoe-bench-model" \
    "--cost-model model_$tag.json --sizes $sizes --iters $iters" | tee "bench_$tag.txt"
  rm -f "bench_$tag.jsonl"
  # shellcheck disable=SC2086
  "$here/cluster.sh" run "$nodes" --slots "$slots" -- -np "$np" "$bench" \
    --cost-model "model_$tag.json" --sizes $sizes --iters "$iters" \
    --jsonl "bench_$tag.jsonl" 2>&1 | grep -v 'setpgid' | tee -a "bench_$tag.txt"
done
