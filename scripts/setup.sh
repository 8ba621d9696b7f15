#!/usr/bin/env bash
# Installs what groak needs (Debian packages). Idempotent: quiet when all is there.
# Usage: scripts/setup.sh [--build]: --build installs only what building and running groak needs (the
# demo's first command); without it, also what the tests need (sanitizer fuzzing, the browser, node).
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config  # toolchain
  libgtest-dev libgmock-dev libbenchmark-dev  # tests and benchmarks (small; the build looks for them)
  libcli11-dev nlohmann-json3-dev        # CLI parsing, config.json
  libsentencepiece-dev sentencepiece     # tokenizer (library + trainer)
  libcpp-httplib-dev                     # server
  openmpi-bin libopenmpi-dev             # tensor parallelism over several machines (mpirun)
)
TEST_PKGS=(
  clang libclang-rt-14-dev               # libFuzzer targets (scripts/fuzz.sh)
  xz-utils                               # the shared fixture's GGUF is xz-compressed
  python3-numpy                          # only for cross-checks against ../shared/tools (skipped if absent)
  chromium                               # the chat page's browser test (tests/e2e, skipped if absent)
)
case "${1:-}" in
  "") tests=1 ;;
  --build) tests=0 ;;
  *) echo "setup: unknown option '$1' (usage: scripts/setup.sh [--build])" >&2; exit 2 ;;
esac
[ $tests = 1 ] && PKGS+=("${TEST_PKGS[@]}")

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js for the end-to-end tests: Debian's, unless some node (e.g. NodeSource's, which bundles npm) is there.
[ $tests = 1 ] && ! command -v node >/dev/null && missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The npm packages of tests/e2e (the official openai and @anthropic-ai/sdk clients, playwright-core), pinned by its lockfile;
# reinstalled only when the lockfile changes. Without the registry the e2e tests skip with a message.
e2e="$(dirname "$0")/../tests/e2e"
if [ $tests = 1 ] && command -v npm >/dev/null && ! cmp -s "$e2e/package-lock.json" "$e2e/node_modules/.groak-installed-lock"; then
  echo "setup: npm ci in tests/e2e" >&2
  if (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    cp "$e2e/package-lock.json" "$e2e/node_modules/.groak-installed-lock"
  else
    echo "setup: warning: npm ci failed (no access to the npm registry?); the e2e tests will skip" >&2
  fi
fi
