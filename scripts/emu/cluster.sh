#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2016 # `a && b || die` dies when either fails; 'sh -c' bodies expand their own args
# An emulated multi-node cluster on one machine: N network namespaces ("nodes") joined through a
# bridge that lives in its own namespace, inter-node bandwidth shaped with tc tbf, and Open MPI
# jobs launched across them through scripts/emu/rsh_agent.sh. Nothing touches the host's own
# network: every interface and address lives inside these namespaces.
#
#   cluster.sh check                         exit 0 if this machine can do it, 77 (skip) if not
#   cluster.sh up N [RATE]                   create nodes PREFIX-n0..n{N-1} (RATE e.g. 1gbit)
#   cluster.sh rate RATE                     re-shape the running cluster ("none": unshaped)
#   cluster.sh status                        list the nodes, addresses and shaping
#   cluster.sh down                          remove the cluster (idempotent)
#   cluster.sh exec I -- CMD...              run CMD inside node I under its hostname
#   cluster.sh run N [RATE] [--slots S] [--private] -- MPIRUN-ARGS...
#       run mpirun across the nodes. Uses the cluster made by `up` when it has N nodes (RATE
#       then re-shapes it); otherwise, or with --private, makes a private one named
#       PREFIX-<pid>-n*, removed on exit even when the job fails.
#
# Environment: EMU_PREFIX (default "tamoe"), EMU_SLOTS (ranks per node, default 2),
# EMU_RATE (default 1gbit), EMU_BURST (tbf bucket, default 256kb),
# EMU_SUBNET (default 10.199.0 -> 10.199.0.0/24, exists only inside the namespaces),
# EMU_VERBOSE=1 prints the commands. (Not TAMOE_*: tamoe rejects unknown TAMOE_* variables, and
# these reach the ranks.) Exit code 77 means "cannot run here" (ctest skip).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
agent="$here/rsh_agent.sh"
prefix=${EMU_PREFIX:-tamoe}
subnet=${EMU_SUBNET:-10.199.0}
cidr="$subnet.0/24"
slots=${EMU_SLOTS:-2}
# tbf: a 256 KiB bucket absorbs TSO bursts; 20 ms of queue keeps TCP from seeing tail drops
# at every window (this kernel has no netem, so there is no latency knob: rate only).
tbf_burst=${EMU_BURST:-256kb}
tbf_latency=20ms
readonly SKIP=77

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}
skip() {
  echo "cluster.sh: SKIP: $*" >&2
  exit $SKIP
}
say() { if [ "${EMU_VERBOSE:-0}" = 1 ]; then echo "+ $*" >&2; fi; }
x() {
  say "$@"
  "$@"
}

[[ $subnet =~ ^(10\.[0-9]{1,3}|172\.(1[6-9]|2[0-9]|3[01])|192\.168)\.[0-9]{1,3}$ ]] ||
  die "EMU_SUBNET: expected the first three octets of a private /24 such as 10.199.0, found '$subnet'"

# --- prerequisites ----------------------------------------------------------------------------
check_prereqs() {
  [ "$(id -u)" = 0 ] || skip "needs root (network namespaces, veth, tc); running as uid $(id -u)"
  local c
  for c in ip tc unshare hostname mpirun; do
    command -v "$c" >/dev/null 2>&1 ||
      skip "'$c' not found (install iproute2, util-linux, hostname, openmpi-bin)"
  done
  # Can we really make a namespace with a shaped veth pair? (Containers without CAP_SYS_ADMIN or
  # without the veth/tbf modules cannot.) Try in a throw-away namespace.
  local t="$prefix-chk$$" err
  if ! err=$({ ip netns add "$t" &&
    ip -n "$t" link add a0 type veth peer name a1 &&
    ip -n "$t" link add b0 type bridge &&
    tc -n "$t" qdisc add dev a0 root tbf rate 1gbit burst "$tbf_burst" latency "$tbf_latency" &&
    ip netns exec "$t" unshare --uts -- hostname "$t"; } 2>&1); then
    ip netns del "$t" 2>/dev/null || true
    skip "cannot create a shaped network namespace here: ${err:-unknown error}"
  fi
  ip netns del "$t"
}

# --- naming -----------------------------------------------------------------------------------
node_ns() { echo "$1-n$2"; }     # node namespace (also its hostname)
bridge_ns() { echo "$1-br"; }    # namespace that holds the bridge
node_addr() { echo "$subnet.$(($1 + 1))"; }

# Namespaces of cluster P (exact: P-n<digits> or P-br).
cluster_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$(re_escape "$1")-(n[0-9]+|br)$" || true
}
re_escape() { printf '%s' "$1" | sed 's/[.[\*^$()+?{|]/\\&/g'; }
count_nodes() { cluster_namespaces "$1" | grep -cE -- '-n[0-9]+$' || true; }

# Stop what still runs in a namespace (only our own jobs run there), then remove it.
remove_ns() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    sleep 0.3
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  fi
  x ip netns del "$ns" 2>/dev/null || true
}

teardown() {
  local p=$1 ns
  [ -n "$p" ] || die "teardown: empty cluster name"
  # Nodes first: their processes stop before the bridge (and with it the veths) goes away.
  for ns in $(cluster_namespaces "$p" | sort -r); do remove_ns "$ns"; done
  rm -rf "/run/tamoe-emu/$p"
}

# Private clusters of `run` are named PREFIX-<pid>; remove those whose process is gone (a crashed
# or killed run), so leftovers never pile up.
remove_stale() {
  local ns pid p
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' |
    grep -E "^$(re_escape "$prefix")-[0-9]+-(n[0-9]+|br)$" || true); do
    p=${ns%-*}
    pid=${p##*-}
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "cluster.sh: removing leftover namespace $ns (run $pid is gone)" >&2
      remove_ns "$ns"
      rm -rf "/run/tamoe-emu/$p"
    fi
  done
}

# --- shaping ----------------------------------------------------------------------------------
valid_rate() { [[ $1 == none || $1 =~ ^[0-9]+(\.[0-9]+)?([kmgt]?(bit|bps))$ ]]; }

# Both directions of each node's link: the node's eth0 (egress = upload) and the bridge-side
# veth (egress = download), like a full-duplex NIC of that rate.
shape() {
  local p=$1 n=$2 rate=$3 i
  valid_rate "$rate" || die "RATE: expected a tc rate such as 1gbit, 200mbit, 25mbps or none, found '$rate'"
  for ((i = 0; i < n; i++)); do
    local dev ns
    for dev in "$(node_ns "$p" "$i"):eth0" "$(bridge_ns "$p"):v$i"; do
      ns=${dev%%:*}
      tc -n "$ns" qdisc del dev "${dev##*:}" root 2>/dev/null || true
      if [ "$rate" != none ]; then
        x tc -n "$ns" qdisc add dev "${dev##*:}" root tbf rate "$rate" burst "$tbf_burst" \
          latency "$tbf_latency"
      fi
    done
  done
  mkdir -p "/run/tamoe-emu/$p"
  echo "$rate" >"/run/tamoe-emu/$p/rate"
}

# --- bring up ---------------------------------------------------------------------------------
create() {
  local p=$1 n=$2 rate=$3 i br
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 64 ] ||
    die "N: expected a node count 1..64, found '$n'"
  valid_rate "$rate" || die "RATE: expected a tc rate such as 1gbit, 200mbit or none, found '$rate'"
  teardown "$p"
  br=$(bridge_ns "$p")
  x ip netns add "$br"
  x ip -n "$br" link add br0 type bridge
  x ip -n "$br" link set br0 up
  x ip -n "$br" link set lo up
  for ((i = 0; i < n; i++)); do
    local ns
    ns=$(node_ns "$p" "$i")
    x ip netns add "$ns"
    # The veth pair is created inside the bridge namespace with its peer moved straight into the
    # node, so no interface ever appears in the host's namespace.
    x ip -n "$br" link add "v$i" type veth peer name eth0 netns "$ns"
    x ip -n "$br" link set "v$i" master br0 up
    x ip -n "$ns" link set lo up
    x ip -n "$ns" addr add "$(node_addr "$i")/24" dev eth0
    x ip -n "$ns" link set eth0 up
  done
  shape "$p" "$n" "$rate"
  echo "$n" >"/run/tamoe-emu/$p/nodes"
}

wait_reachable() {
  # The bridge forwards at once (no STP), but give the links a moment to come up: a TCP connect
  # from node 0 to every other node's closed port 9 answers "refused" once the path works.
  local p=$1 n=$2 i t
  for ((i = 1; i < n; i++)); do
    for t in $(seq 50); do
      local out
      out=$(ip netns exec "$(node_ns "$p" 0)" bash -c "exec 3<>/dev/tcp/$(node_addr "$i")/9" 2>&1 || true)
      [[ $out == *refused* ]] && break
      [ "$t" = 50 ] && die "node $i ($(node_addr "$i")) not reachable from node 0"
      sleep 0.1
    done
  done
}

status() {
  local p=$1 ns
  local nss
  nss=$(cluster_namespaces "$p")
  if [ -z "$nss" ]; then
    echo "cluster $p: down"
    return
  fi
  echo "cluster $p: $(count_nodes "$p") nodes, subnet $cidr, rate $(cat "/run/tamoe-emu/$p/rate" 2>/dev/null || echo '?')"
  for ns in $nss; do
    [[ $ns == *-br ]] && continue
    printf '  %-16s %s\n' "$ns" "$(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}')"
  done
}

# --- running MPI jobs -------------------------------------------------------------------------
mpirun_in() {
  local p=$1 n=$2
  shift 2
  local dir="/run/tamoe-emu/$p" i
  mkdir -p "$dir"
  : >"$dir/hostfile"
  for ((i = 0; i < n; i++)); do echo "$(node_ns "$p" "$i") slots=$slots" >>"$dir/hostfile"; done
  # mpirun itself runs on node 0 under node 0's hostname, so it recognizes that hostfile entry
  # as local and starts the other nodes' daemons through the agent.
  local ns0
  ns0=$(node_ns "$p" 0)
  say "mpirun (in $ns0) --hostfile $dir/hostfile ... $*"
  env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}" \
    OMPI_MCA_btl_base_warn_component_unused=0 EMU_CLUSTER="$p" \
    ip netns exec "$ns0" unshare --uts -- sh -c 'hostname "$1" && shift && exec "$@"' \
    cluster "$ns0" mpirun --hostfile "$dir/hostfile" \
    --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1 \
    --bind-to none --mca mpi_yield_when_idle 1 \
    --mca pml ob1 --mca btl self,vader,tcp \
    --mca btl_tcp_if_include "$cidr" --mca oob_tcp_if_include "$cidr" \
    "$@"
}

run_cmd() {
  local n=${1:-} rate="" private=0
  [ -n "$n" ] || die "run: expected N, then optional RATE and --slots S, then -- and mpirun arguments"
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case $1 in
    --slots)
      [ $# -ge 2 ] || die "--slots: expected a number"
      slots=$2
      shift 2
      ;;
    --slots=*)
      slots=${1#--slots=}
      shift
      ;;
    --private)
      private=1
      shift
      ;;
    *)
      [ -z "$rate" ] || die "run: expected one RATE, found '$rate' and '$1'"
      rate=$1
      shift
      ;;
    esac
  done
  [ "${1:-}" = -- ] || die "run: expected '--' before the mpirun arguments"
  shift
  [[ $slots =~ ^[0-9]+$ ]] && [ "$slots" -ge 1 ] || die "--slots: expected a positive number, found '$slots'"
  check_prereqs
  remove_stale
  local p=$prefix own=0
  if ((private)) || [ "$(count_nodes "$prefix")" != "$n" ]; then
    p="$prefix-$$"
    own=1
    # A private cluster: remove it however this script ends (job failure, error, Ctrl-C, TERM).
    # shellcheck disable=SC2064 # expand now: $p is local to this function
    trap "teardown '$p'" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    create "$p" "$n" "${rate:-${EMU_RATE:-1gbit}}"
    wait_reachable "$p" "$n"
  elif [ -n "$rate" ]; then
    shape "$p" "$n" "$rate"
  fi
  say "cluster $p ($n nodes, $( ((own)) && echo private || echo shared))"
  local rc=0
  mpirun_in "$p" "$n" "$@" || rc=$?
  return $rc
}

# --- main -------------------------------------------------------------------------------------
cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
check)
  check_prereqs
  echo "cluster.sh: this machine can run the emulated cluster"
  ;;
up)
  [ $# -ge 1 ] && [ $# -le 2 ] || die "up: expected N [RATE], found $# argument(s)"
  check_prereqs
  remove_stale
  create "$prefix" "$1" "${2:-${EMU_RATE:-1gbit}}"
  wait_reachable "$prefix" "$1"
  status "$prefix"
  ;;
rate)
  [ $# -eq 1 ] || die "rate: expected RATE, found $# argument(s)"
  n=$(count_nodes "$prefix")
  [ "$n" -gt 0 ] || die "rate: cluster $prefix is not up"
  shape "$prefix" "$n" "$1"
  status "$prefix"
  ;;
status)
  status "$prefix"
  ;;
down)
  [ "$(id -u)" = 0 ] || skip "needs root; running as uid $(id -u)"
  command -v ip >/dev/null 2>&1 || skip "'ip' not found (iproute2)"
  teardown "$prefix"
  remove_stale
  ;;
exec)
  [ $# -ge 3 ] && [ "$2" = -- ] || die "exec: expected I -- CMD..."
  ns=$(node_ns "$prefix" "$1")
  [ -e "/run/netns/$ns" ] || die "exec: no node $1 (namespace $ns) in cluster $prefix"
  shift 2
  exec ip netns exec "$ns" unshare --uts -- sh -c 'hostname "$1" && shift && exec "$@"' \
    cluster "$ns" "$@"
  ;;
run)
  run_cmd "$@"
  ;;
"" | -h | --help | help)
  sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  ;;
*)
  die "unknown command '$cmd' (expected check, up, rate, status, down, exec, run)"
  ;;
esac
