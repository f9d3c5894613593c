#!/usr/bin/env bash
# The main job: set up, build, then train the expert-parallel MoE classifier on Fashion-MNIST
# under mpirun, 4 ranks as 2 virtual nodes, 3 epochs (~8 s on 2 cores once built), with a JSON
# Lines log and checkpoints in ./tamoe_run/. Extra arguments go to tamoe-train
# (e.g. --aux ta-bias --rho 1.5). TAMOE_MAIN=probe runs the topology probe instead.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh" "$here/build"
source "$here/scripts/mpi_env.sh"
np=${TAMOE_NP:-4}
vn=${TAMOE_VN:-2}
if [ "${TAMOE_MAIN:-train}" = probe ]; then
  exec mpirun -np "$np" --bind-to none "$here/build/src/tools/tamoe-probe" --virtual-nodes "$vn" \
    --out "${TAMOE_OUT:-tamoe_cost_model.json}" "$@"
fi
mkdir -p tamoe_run
exec mpirun -np "$np" --bind-to none "$here/build/src/tools/tamoe-train" --virtual-nodes "$vn" \
  --log tamoe_run/train.jsonl --checkpoint tamoe_run/ckpt "$@"
