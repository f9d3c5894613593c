#!/usr/bin/env bash
# One call on the lent GPU machine: build everything for sm_90, run the whole test suite (GPU tests
# run there), the NCCL probe, and the GPU benchmarks; logs under $OUT (or ./gpu_out).
set -uo pipefail
out=${OUT:-$PWD/gpu_out}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
nvidia-smi -L > "$out/gpu.txt" 2>&1; nvidia-smi topo -m >> "$out/gpu.txt" 2>&1
cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DTAMOE_WITH_CUDA=ON -DTAMOE_WERROR=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
ninja -C /tmp/b -j16 -k 0 > "$out/build.log" 2>&1 || grep -A12 "error:" "$out/build.log" | head -80
ctest --test-dir /tmp/b -j8 --timeout 300 > "$out/ctest.log" 2>&1
tail -25 "$out/ctest.log"
ngpu=$(nvidia-smi -L | wc -l)
mpirun -np "$ngpu" /tmp/b/src/tools/tamoe-probe --transport nccl -q --check-bytes 0 --out "$out/cm_nccl.json" \
  > "$out/probe_nccl.log" 2>&1; tail -15 "$out/probe_nccl.log"
/tmp/b/bench/routing/tamoe-bench-gate --iters 100 > "$out/bench_gate.log" 2>&1; tail -14 "$out/bench_gate.log"
mpirun -np "$ngpu" /tmp/b/bench/collectives/tamoe-bench-dispatch --jsonl "$out/dispatch.jsonl" > "$out/bench_dispatch.log" 2>&1; tail -32 "$out/bench_dispatch.log"
