#!/usr/bin/env bash
# The main job on a fresh machine: install, build, synthesise a small Grok-architecture checkpoint
# (random weights, xAI's raw format; cached under ~/.cache/groak) and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build >/dev/null
cache="${XDG_CACHE_HOME:-$HOME/.cache}/groak"
model="$cache/demo-seed1"
if [ ! -f "$model/config.json" ]; then
  build/groak synth --preset demo --seed 1 --out "$model"
fi
echo "== groak info (a synthetic checkpoint: the weights are RANDOM, the format and the code path are real)"
build/groak info --model "$model" | sed -n '1,25p'
echo "== groak logits: 8 tokens, full prefill vs one token at a time through the KV cache"
build/groak logits --model "$model" --tokens 422,1033,356,1180,333,972,360,2017 --out "$cache/demo-full.f32"
build/groak logits --model "$model" --tokens 422,1033,356,1180,333,972,360,2017 --mode incremental --out "$cache/demo-inc.f32"
cmp -s "$cache/demo-full.f32" "$cache/demo-inc.f32" && echo "identical bytes" || echo "(full and incremental differ only by f32 rounding)"
