#!/bin/sh
# Open MPI's "remote shell" for the emulated cluster (plm_rsh_agent): instead of ssh to HOST,
# enter the network namespace HOST and run the command there under its own hostname.
#   rsh_agent.sh HOST command words...
# Like ssh, the command words are joined into one string for a shell (Open MPI quotes them for
# that). The private UTS namespace matters: Open MPI names its shared-memory files and session
# directories after the hostname, so two "nodes" with one hostname would collide and crash.
set -e
if [ $# -lt 2 ]; then
  echo "rsh_agent.sh: expected HOST COMMAND..., found $# argument(s)" >&2
  exit 2
fi
host=$1
shift
if [ ! -e "/run/netns/$host" ]; then
  echo "rsh_agent.sh: no network namespace '$host' (is the emulated cluster up?)" >&2
  exit 255
fi
# shellcheck disable=SC2016 # the inner script expands its own arguments
exec ip netns exec "$host" unshare --uts -- sh -c 'hostname "$1" && shift && exec sh -c "$*"' \
  rsh_agent "$host" "$@"
