#!/usr/bin/env bash
# docs/perf.md's side-by-side rounds: per GGUF file, one after the other, llama.cpp's llama-bench, then
# ik_llama.cpp's with -rtr 0 and -rtr 1 (when given), then groak bench, all -p 512 -n 32 -t 2 -r 2 (override
# with BENCH_ARGS). Run it with nothing else on the machine; ratios within one round are what counts.
#   GROAK_LLAMA_CPP=/path/to/llama.cpp/build/bin [GROAK_IK_LLAMA_CPP=/path/to/ik_llama.cpp/build/bin] \
#     scripts/peer_round.sh FILE.gguf...
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: scripts/peer_round.sh FILE.gguf..." >&2; exit 2; }
llama=${GROAK_LLAMA_CPP:?set GROAK_LLAMA_CPP to a llama.cpp build/bin folder (llama-bench)}
ik=${GROAK_IK_LLAMA_CPP:-}
args=${BENCH_ARGS:--p 512 -n 32 -t 2 -r 2}
for f in "$@"; do
  cat "$f" > /dev/null  # the file in the page cache before the first engine
  echo "== $f (load $(cut -d' ' -f1 /proc/loadavg), $(date +%T))"
  echo "-- llama.cpp"; "$llama/llama-bench" -m "$f" $args 2>/dev/null | grep -E '^\| .*(pp|tg)[0-9]'
  if [ -n "$ik" ]; then
    for rtr in 0 1; do
      echo "-- ik_llama.cpp -rtr $rtr"; "$ik/llama-bench" -m "$f" $args -rtr $rtr 2>/dev/null | grep -E '^\| .*(pp|tg)[0-9]'
    done
  fi
  echo "-- groak"; build/groak bench -m "$f" $args 2>&1 | grep -E '^(\| .*(pp|tg)[0-9]|prefill|decode)'
done
