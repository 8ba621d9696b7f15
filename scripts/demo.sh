#!/usr/bin/env bash
# The main job on a fresh machine: install, build, then generate text with an embedded default model —
# a small Grok-architecture checkpoint synthesised in xAI's raw format (RANDOM weights) and a small
# SentencePiece tokenizer trained on data/corpus.txt, both made once and cached under ~/.cache/groak/.
# Extra arguments go to `groak generate` (e.g. -n 64 --temp 0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_TARGET=groak scripts/build.sh build >&2  # progress on stderr: stdout holds only the text
model="${XDG_CACHE_HOME:-$HOME/.cache}/groak/demo-v1"
if [ ! -f "$model/tokenizer.model" ]; then
  # synth also trains the preset's 2048-piece tokenizer on the built-in corpus (--force: a run interrupted before it)
  build/groak synth --preset demo --seed 1 --out "$model" --force
fi
echo "groak demo: a synthetic Grok-1-architecture model with RANDOM weights ($model)." >&2
echo "The text is gibberish by design; the format (ckpt-0 pickles) and the code path are the real ones." >&2
echo "For the real Grok-1 see README.md, 'Running the real Grok-1'." >&2
build/groak generate --model "$model" --prompt "The answer to life the universe and everything is" -n 48 --seed 42 "$@"
