#!/usr/bin/env bash
# Builds groak into build/ (Release). Usage: scripts/build.sh [BUILD_DIR [extra cmake args...]]
# BUILD_TARGET=groak builds only the CLI (what the demo needs).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}; shift || true
# Ninja where it is installed (it compiles across libraries at once; make waits library by library); a
# folder configured before keeps the generator it has.
gen=()
[ ! -f "$dir/CMakeCache.txt" ] && command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$dir" -j "$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
