#!/usr/bin/env bash
# Step time of tamoe-train with the Switch/GShard loss vs topology-aware routing (ta loss, ta-bias)
# on the emulated cluster (docs/emulated_moe.md, "Training step time"): for each inter-node RATE,
# a private cluster of NODES namespaces x SLOTS ranks runs a short tamoe-train job per aux mode.
# The modes run interleaved (switch, ta, ta-bias, switch, ta, ta-bias, ...) so that background
# load on a shared machine hits all of them alike; then a table of the mean step time, its split
# and the ratio to switch is printed.
#
#   scripts/emu/train_step_times.sh OUTDIR BINDIR [RATE...]     RATE defaults to 1gbit 200mbit
#   scripts/emu/train_step_times.sh summary OUTDIR...           the table again (over all OUTDIRs)
#
# BINDIR holds tamoe-train or is a build tree with src/tools/tamoe-train. OUTDIR gets, per run,
# train_RATE_AUX_rREP.jsonl (tamoe-train's log), .txt (its output) and .load (the load average
# when it started). Environment:
#   EMU_TRAIN_NODES (2), EMU_TRAIN_SLOTS (2)    cluster shape
#   EMU_TRAIN_REPEATS (4)                       runs per (rate, mode)
#   EMU_TRAIN_AUX ("switch ta ta-bias")         modes; the first is the ratio's baseline
#   EMU_TRAIN_STEPS (400), EMU_TRAIN_INTERVAL (50)
#   EMU_TRAIN_ARGS                              extra tamoe-train options (later ones win)
# The fixed options are those of docs/tamoe_train.md's quality table: --aux-weight 0.1
# --bias-rate 0.01 --overflow reroute --rho 1.5 --seed 1, default model (H 64, batch 64 per rank).
# The first interval of every run is left out of the means (connection set-up, first touches).
# Exit: 77 when the machine cannot run the cluster, otherwise the first failing run's status.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/common.sh"

summary() {
  python3 - "$@" <<'PY'
import glob, json, os, re, statistics as st, sys

runs = {}  # (rate, aux) -> {rep: result}
bad = 0
for d in sys.argv[1:]:
    for f in sorted(glob.glob(os.path.join(d, "train_*_r*.jsonl"))):
        m = re.match(r"train_(.+?)_(none|switch|ta|ta-bias)_r(\d+)\.jsonl$", os.path.basename(f))
        if not m:
            continue
        rate, aux, rep = m.group(1), m.group(2), f"{d}#{m.group(3)}"
        iv = [j for j in map(json.loads, open(f)) if j["kind"] == "interval"]
        if len(iv) < 2:
            print(f"train_step_times: {f}: expected >= 2 interval lines, found {len(iv)}", file=sys.stderr)
            bad += 1
            continue
        steps = iv[-1]["step"] - iv[0]["step"]
        iv = iv[1:]  # the warm-up interval is left out
        t = {k: sum(j["time_s"][k] for j in iv) * 1e3 / steps for k in iv[0]["time_s"]}
        kept = sum(j["copies"] * (1 - j["drop_share"]) for j in iv)
        cross = sum(j["copies"] * (1 - j["drop_share"]) * j["share_cross_node"] for j in iv) / kept
        load = None
        lf = f[:-6] + ".load"
        if os.path.exists(lf):
            load = float(open(lf).read().split()[0])
        runs.setdefault((rate, aux), {})[rep] = dict(t=t, cross=cross, steps=steps, load=load)

if not runs:
    sys.exit("train_step_times: no runs found in " + " ".join(sys.argv[1:]))
order = {"switch": 0, "ta": 1, "ta-bias": 2, "none": 3}
rates = sorted({r for r, _ in runs}, key=lambda r: -float(re.sub(r"[a-z]", "", r) or 0) *
               {"k": 1e-3, "m": 1, "g": 1e3}.get(re.sub(r"[0-9.]", "", r)[:1], 1))
cols = [("gate", "gate"), ("perm", "permute"), ("a2a", "a2a"), ("exp", "experts"),
        ("comb", "combine"), ("ar", "allreduce")]
print("| rate | aux | runs | step ms, median (range) | " + " | ".join(c for c, _ in cols) +
      " | cross-node | vs switch: step, median of pairs (range) | best run vs best switch run | vs switch: a2a+comb |")
print("|---|---|---:|---|" + "---:|" * len(cols) + "---:|---|---:|---:|")
loads = []
for rate in rates:
    base = runs.get((rate, "switch"), {})
    for aux in sorted({a for r, a in runs if r == rate}, key=lambda a: order.get(a, 9)):
        rs = runs[(rate, aux)]
        tot = [r["t"]["total"] for r in rs.values()]
        med = lambda k: st.median(r["t"][k] for r in rs.values())
        loads += [r["load"] for r in rs.values() if r["load"] is not None]
        ratio, comm, best = "", "", ""
        if aux != "switch" and base:
            pairs = [(rs[k], base[k]) for k in rs if k in base]  # same repeat: run back to back
            rt = sorted(a["t"]["total"] / b["t"]["total"] for a, b in pairs)
            ac = [(a["t"]["a2a"] + a["t"]["combine"]) / (b["t"]["a2a"] + b["t"]["combine"]) for a, b in pairs]
            if rt:
                ratio = f"{st.median(rt):.2f} ({rt[0]:.2f}-{rt[-1]:.2f})"
                comm = f"{st.median(ac):.2f}"
                best = f"{min(tot) / min(b['t']['total'] for b in base.values()):.2f}"
        print(f"| {rate} | {aux} | {len(rs)} | {st.median(tot):.2f} ({min(tot):.2f}-{max(tot):.2f}) | " +
              " | ".join(f"{med(k):.2f}" for _, k in cols) +
              f" | {st.median(r['cross'] for r in rs.values()):.3f} | {ratio} | {best} | {comm} |")
if loads:
    print(f"\nload average (1 min) at the start of the runs: {min(loads):.2f}-{max(loads):.2f}")
sys.exit(1 if bad else 0)
PY
}

if [ "${1:-}" = summary ]; then
  shift
  [ $# -ge 1 ] || {
    echo "train_step_times.sh summary: expected OUTDIR..., found none" >&2
    exit 2
  }
  summary "$@"
  exit
fi
[ $# -ge 2 ] || {
  echo "train_step_times.sh: expected OUTDIR BINDIR [RATE...], found $# argument(s)" >&2
  exit 2
}
out=$(mkdir -p "$1" && cd "$1" && pwd)
bindir=$(cd "$2" && pwd)
shift 2
bin=$(emu_find_bin train_step_times.sh "$bindir" tamoe-train src/tools)
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(1gbit 200mbit)
nodes=${EMU_TRAIN_NODES:-2}
slots=${EMU_TRAIN_SLOTS:-2}
repeats=${EMU_TRAIN_REPEATS:-4}
steps=${EMU_TRAIN_STEPS:-400}
interval=${EMU_TRAIN_INTERVAL:-50}
read -r -a auxes <<<"${EMU_TRAIN_AUX:-switch ta ta-bias}"
for v in nodes slots repeats steps interval; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || {
    echo "train_step_times.sh: EMU_TRAIN_${v^^}: expected a positive integer, found '${!v}'" >&2
    exit 2
  }
done
((steps >= 2 * interval)) || {
  echo "train_step_times.sh: EMU_TRAIN_STEPS: expected >= 2 x EMU_TRAIN_INTERVAL ($((2 * interval))) so that one interval is left after the warm-up one, found $steps" >&2
  exit 2
}
for a in "${auxes[@]}"; do
  case $a in
  none | switch | ta | ta-bias) ;;
  *)
    echo "train_step_times.sh: EMU_TRAIN_AUX: expected none, switch, ta or ta-bias, found '$a'" >&2
    exit 2
    ;;
  esac
done

"$here/cluster.sh" check
cd "$out"
status=0
for rate in "${rates[@]}"; do
  for ((rep = 1; rep <= repeats; rep++)); do
    for aux in "${auxes[@]}"; do
      tag="train_${rate}_${aux}_r$rep"
      # shellcheck disable=SC2206 # EMU_TRAIN_ARGS is a word list on purpose
      args=(--aux "$aux" --aux-weight 0.1 --bias-rate 0.01 --overflow reroute --rho 1.5 --seed 1
        --stop-after "$steps" --interval "$interval" -q ${EMU_TRAIN_ARGS:-} --log "$tag.jsonl")
      cmd=("$here/cluster.sh" run "$nodes" "$rate" --slots "$slots" --private --
        -np $((nodes * slots)) "$bin" "${args[@]}")
      cut -d' ' -f1-3 /proc/loadavg >"$tag.load"
      echo "== $tag (load $(cat "$tag.load")): ${cmd[*]}" | tee "$tag.txt"
      rm -f "$tag.jsonl"
      start=$(date +%s)
      rc=0
      "${cmd[@]}" >>"$tag.txt" 2>&1 || rc=$?
      echo "== $tag: exit $rc, $(($(date +%s) - start)) s" | tee -a "$tag.txt"
      [ "$rc" = 0 ] || {
        grep -v setpgid "$tag.txt" | tail -5 >&2
        [ "$status" != 0 ] || status=$rc
      }
    done
  done
done
echo
rc=0
summary "$out" || rc=$?
[ "$status" != 0 ] || status=$rc
exit "$status"
