#!/usr/bin/env bash
# Set up, build and run every test: the normal build, then an AddressSanitizer +
# UndefinedBehaviorSanitizer build of the same tests, then the clang-format check.
#   scripts/test.sh [--no-asan]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/scripts/mpi_env.sh"
jobs=$(nproc)

"$here/scripts/setup.sh" "$here/build"
echo "== tests (RelWithDebInfo) =="
ctest --test-dir "$here/build" --output-on-failure --no-tests=error -j "$jobs"

if [ "${1:-}" != "--no-asan" ]; then
  echo "== tests (ASan + UBSan) =="
  # Benchmarks and tools are left out of the sanitized build: the tests exercise the same code.
  "$here/scripts/setup.sh" "$here/build-asan" -DCMAKE_BUILD_TYPE=Debug -DTAMOE_SANITIZE=ON \
    -DTAMOE_BUILD_BENCH=OFF -DTAMOE_WITH_CUDA=OFF
  export LSAN_OPTIONS="suppressions=$here/scripts/lsan.supp:print_suppressions=0"
  export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  ctest --test-dir "$here/build-asan" --output-on-failure --no-tests=error -j "$jobs"
fi

echo "== clang-format =="
cd "$here"
bad=$(git ls-files '*.h' '*.cc' '*.cu' '*.cuh' | xargs -r clang-format --dry-run 2>&1 | grep -c "warning:" || true)
if [ "$bad" != "0" ]; then
  git ls-files '*.h' '*.cc' '*.cu' '*.cuh' | xargs -r clang-format --dry-run 2>&1 | grep "warning:" | cut -d: -f1 | sort -u
  echo "clang-format: $bad places differ (run clang-format -i on the files above)" >&2
  exit 1
fi
echo "clang-format: clean"
