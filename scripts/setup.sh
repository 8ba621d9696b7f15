#!/usr/bin/env bash
# Installs what groak needs to build and test (Debian packages). Idempotent: quiet when all is there.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config       # toolchain
  libgtest-dev libgmock-dev libbenchmark-dev  # tests and benchmarks
  libcli11-dev nlohmann-json3-dev        # CLI parsing, config.json
  libsentencepiece-dev sentencepiece     # tokenizer (library + trainer)
  libcpp-httplib-dev                     # server
  openmpi-bin libopenmpi-dev             # tensor parallelism over several machines (mpirun)
  clang libclang-rt-14-dev               # libFuzzer targets (scripts/fuzz.sh)
  xz-utils                               # the shared fixture's GGUF is xz-compressed
  python3-numpy                          # only for cross-checks against ../shared/tools (skipped if absent)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
