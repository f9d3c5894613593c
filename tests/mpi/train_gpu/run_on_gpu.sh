#!/usr/bin/env bash
# One call on a lent GPU machine for tamoe-train's GPU path: a trimmed build (only tamoe-train and
# the GPU path's tests), the tests, then 1 epoch of the default model at 1 rank on the GPU and on
# the host for comparison, and the refusal of 2 ranks on a 1-GPU host. Logs under $OUT.
# Usage (repo root): DATA=<fashion-mnist dir> [TESTS=0] [EPOCHS=n] tests/mpi/train_gpu/run_on_gpu.sh
set -uo pipefail
out=${OUT:-$PWD/gpu_out}
data=${DATA:-/usr/share/datasets/fashion-mnist}
b=${BUILD:-/tmp/b}
tests=${TESTS:-1}
epochs=${EPOCHS:-1}
targets="tamoe-train"
[ "$tests" = 1 ] && targets="$targets test_train_gpu_kernels test_gpu_trainer"
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
nvidia-smi -L; nproc
cmake -S . -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAMOE_WITH_CUDA=ON -DTAMOE_WERROR=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90 > /tmp/configure.log 2>&1 || { tail -30 /tmp/configure.log; exit 1; }
t0=$(date +%s)
ninja -C "$b" -j16 -k 0 $targets > /tmp/build.log 2>&1 ||
  { grep -B2 -A12 "error" /tmp/build.log | head -80; exit 1; }
echo "build $(( $(date +%s) - t0 )) s; warnings: $(grep -c 'warning:' /tmp/build.log)"
grep -A4 'warning:' /tmp/build.log | head -20
[ "$tests" = 1 ] && ctest --test-dir "$b" -R 'test_train_gpu|test_gpu_trainer' --output-on-failure --timeout 200 \
  > "$out/ctest.log" 2>&1
[ "$tests" = 1 ] && grep -E "tests passed|Failed|SKIP" "$out/ctest.log"
[ "$tests" = 1 ] && "$b/tests/mpi/train_gpu/test_gpu_trainer" 2>&1 | grep "rel diff"
run() {  # tag, device, extra args
  local tag=$1 dev=$2; shift 2
  /usr/bin/time -f "wall %e s" mpirun -np 1 --bind-to none "$b/src/tools/tamoe-train" --data "$data" \
    --device "$dev" "$@" > "$out/${tag}_$dev.log" 2>&1
  echo "== $tag $dev $*"
  grep -E "^epoch|error|ms/step gate perm|step time|wall" "$out/${tag}_$dev.log"
}
# The default model (H 64, ffn 128, batch 64), then a wider one where the GEMMs matter.
for dev in gpu host; do
  run default $dev --epochs "$epochs" --interval 200 --log "$out/default_$dev.jsonl"
done
wide="--epochs 1 --hidden 256 --ffn-hidden 1024 --batch 256 --max-train 16384 --max-test 2000"
run wide gpu $wide --interval 16
run wide host $wide --interval 16
mpirun -np 2 --bind-to none "$b/src/tools/tamoe-train" --data "$data" --device gpu --max-train 64 \
  --max-test 10 2>&1 | grep -m1 "error"
