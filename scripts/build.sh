#!/usr/bin/env bash
# Builds groak into build/ (Release). Usage: scripts/build.sh [BUILD_DIR [extra cmake args...]]
# BUILD_TARGET=groak builds only the CLI (what the demo needs).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}; shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$dir" -j "$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
