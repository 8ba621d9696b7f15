#!/usr/bin/env bash
# The main job on a fresh machine: install, build, then generate text with the embedded default model,
# models/grok-kjv: a small Grok-1 (model.py's architecture: 4 layers, d 256, 8 experts top-2) trained on
# the King James Bible and shipped in xAI's raw format (ckpt-0 pickles, int8 weights, bf16 scales) with its
# tokenizer (docs/DEFAULT_MODEL.md). Extra arguments go to `groak generate` (e.g. -n 64 --temp 0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --build  # what building and running needs (the tests' extras come with scripts/test.sh)
BUILD_TARGET=groak scripts/build.sh build >&2  # progress on stderr: stdout holds only the text
echo "groak demo: models/grok-kjv, a 21M-parameter Grok-1 trained on the King James Bible (docs/DEFAULT_MODEL.md)." >&2
echo "For the real Grok-1 see README.md, 'Running the real Grok-1'." >&2
build/groak generate --model models/grok-kjv --prompt "And God said" --echo -n 64 --seed 42 "$@"
