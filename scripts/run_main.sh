#!/usr/bin/env bash
# The main job: set up, build, then probe this machine under mpirun as 4 ranks in 2 virtual nodes
# and print the fitted cost model (written to tamoe_cost_model.json).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh" "$here/build"
source "$here/scripts/mpi_env.sh"
np=${TAMOE_NP:-4}
vn=${TAMOE_VN:-2}
exec mpirun -np "$np" --bind-to none "$here/build/src/tools/tamoe-probe" --virtual-nodes "$vn" \
  --out "${TAMOE_OUT:-tamoe_cost_model.json}" "$@"
