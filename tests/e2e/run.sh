#!/usr/bin/env bash
# Runs one end-to-end test of `groak serve` against a synthetic tiny model (random weights) and a small
# trained tokenizer: `openai` (the official npm client), `anthropic` (the official @anthropic-ai/sdk client
# on the Messages API), `browser` (the chat page in Debian's chromium,
# driven by playwright-core) or `inspect` (groak inspect's report.html in chromium, no server).
# `structured` (constrained output through the openai client, every reply validated by Ajv).
# Usage: tests/e2e/run.sh GROAK_BIN openai|anthropic|structured|browser|inspect [RANKS]
# RANKS = 2: the servers run as a tensor-parallel group under `mpirun -np 2` (skipped without mpirun).
# Exit 77 (ctest: skipped) with a message when node, the npm packages or chromium are absent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
groak="$1"
which_test="$2"
ranks="${3:-1}"
skip() { echo "SKIPPED: $*" >&2; exit 77; }

command -v node >/dev/null || skip "node is not installed (scripts/setup.sh installs nodejs)"
[ -d "$here/node_modules/openai" ] && [ -d "$here/node_modules/@anthropic-ai/sdk" ] && [ -d "$here/node_modules/playwright-core" ] &&
  [ -d "$here/node_modules/ajv" ] ||
  skip "the npm packages are not installed: run scripts/setup.sh (npm ci in tests/e2e) with access to the npm registry"
if [ "$which_test" = browser ] || [ "$which_test" = inspect ]; then
  chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
  [ -n "$chromium" ] || skip "chromium is not installed (Debian: apt-get install chromium; scripts/setup.sh does)"
  export CHROMIUM="$chromium"
fi

if [ "$ranks" != 1 ]; then
  [ "${GROAK_WITH_MPI:-1}" = 1 ] || skip "groak was built without MPI (scripts/setup.sh installs libopenmpi-dev)"
  command -v mpirun >/dev/null || skip "mpirun is not installed (scripts/setup.sh installs openmpi-bin)"
fi
threads=$(( ranks > 1 ? 1 : 2 ))  # two cores here, shared by the ranks

work="$(mktemp -d /tmp/groak-e2e-XXXXXX)"
server_pids=""
cleanup() {
  local rc=$?  # the test's (a server stopped by mpirun exits non-zero: that is not the test failing)
  for pid in $server_pids; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# synth trains the preset's tokenizer beside the checkpoint. Two ranks of the tiny model stream ~10000
# tokens/s here, too fast for a browser to see a reply arrive in parts: they serve the larger demo preset.
preset=$([ "$ranks" = 1 ] && echo tiny || echo demo)
"$groak" synth --preset "$preset" --seed 5 --out "$work/model" >/dev/null 2>&1
if [ "$which_test" = inspect ]; then  # groak inspect's report, opened from disk: no server
  "$groak" inspect --model "$work/model" -t 2 --out "$work/inspect" \
    -p "The answer to life, the universe and everything is forty-two, said the computer." 2>"$work/inspect.log" ||
    { cat "$work/inspect.log" >&2; exit 1; }
  export GROAK_REPORT="$work/inspect/report.html" GROAK_SCREENSHOT_DIR="${GROAK_SCREENSHOT_DIR:-$work}"
  status=0
  node "$here/inspect_report_test.mjs" || status=$?
  exit "$status"
fi
# Starts a server (its log in $work/$1.log, extra options after) and sets $port once it is ready.
start_server() {
  local name="$1"; shift
  # Under a time limit below ctest's (300 s): a test killed at its timeout never runs the cleanup, and a
  # server left behind (mpirun's ranks poll) would load every later run of the suite.
  local launch=(timeout 280)
  [ "$ranks" = 1 ] || launch+=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
                               mpirun -np "$ranks" --oversubscribe --bind-to none)
  "${launch[@]}" "$groak" serve --model "$work/model" --port 0 --parallel 4 --queue 8 -t "$threads" --alias tiny-e2e "$@" \
    2>"$work/$name.log" &
  server_pids="$server_pids $!"
  for _ in $(seq 1 300); do
    grep -q "ready:" "$work/$name.log" && break
    kill -0 "$!" 2>/dev/null || { cat "$work/$name.log" >&2; echo "the server exited" >&2; exit 1; }
    sleep 0.1
  done
  grep -q "ready:" "$work/$name.log" || { cat "$work/$name.log" >&2; echo "the server never got ready" >&2; exit 1; }
  port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/$name.log")"
}
# The chat page's token panel needs --allow-inspect, which one process only can offer.
if [ "$ranks" = 1 ]; then start_server server --ctx-size 4096 --allow-inspect; else start_server server --ctx-size 4096; fi
export GROAK_RANKS="$ranks"
export GROAK_URL="http://127.0.0.1:$port"
if [ "$which_test" = browser ] || [ "$which_test" = anthropic ]; then  # a second server with an API key and a small context
  start_server keyed --ctx-size 256 --api-key sekret
  export GROAK_KEY_URL="http://127.0.0.1:$port" GROAK_KEY=sekret
fi
status=0
case "$which_test" in
  openai) node "$here/openai_test.mjs" || status=$? ;;
  anthropic) node "$here/anthropic_test.mjs" || status=$? ;;
  structured) node "$here/structured_test.mjs" || status=$? ;;
  browser) node "$here/chat_page_test.mjs" || status=$? ;;
  *) echo "unknown test '$which_test' (openai, anthropic, structured or browser)" >&2; exit 2 ;;
esac
for pid in $server_pids; do
  kill -0 "$pid" 2>/dev/null || { echo "a server died during the test" >&2; cat "$work"/*.log >&2; exit 1; }
done
[ "$status" -eq 0 ] || cat "$work"/*.log >&2
exit "$status"
