#!/usr/bin/env bash
# Installs what tamoe needs (Debian 12 / Ubuntu 24.04) and configures + builds it.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]
# Idempotent: apt is skipped when every package is already present (so it also works on machines
# that reach no package registry), cmake only re-runs when needed, ninja only rebuilds changes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
shift || true

pkgs=(cmake ninja-build g++ pkg-config libopenmpi-dev openmpi-bin libhwloc-dev hwloc libeigen3-dev catch2
      libcli11-dev nlohmann-json3-dev coinor-libclp-dev zlib1g-dev iproute2 clang-format)
optional_pkgs=(dataset-fashion-mnist)

missing=()
for p in "${pkgs[@]}" "${optional_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
         --no-install-recommends "${missing[@]}" >/dev/null; }; then
    # No registry (the GPU machine): go on if only optional packages are missing and the
    # required tools are there some other way.
    for p in "${missing[@]}"; do
      case " ${optional_pkgs[*]} " in *" $p "*) echo "[setup] optional package $p not installed";; *)
        command -v cmake >/dev/null && command -v mpicxx >/dev/null && pkg-config --exists hwloc \
          || { echo "[setup] error: could not install $p and the toolchain is incomplete" >&2; exit 1; };;
      esac
    done
  fi
else
  echo "[setup] all packages present"
fi

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAMOE_WERROR=ON "$@"
elif (($#)); then
  cmake "$build" "$@"
fi
cmake --build "$build" -j "$(nproc)"
echo "[setup] built in $build"
