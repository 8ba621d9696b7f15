#!/usr/bin/env bash
# The KL-divergence table of docs/FORMATS.md: a synthetic model (random weights) converted to every
# `groak convert` type, each compared with the source by `groak perplexity --kl-divergence` on data/corpus.txt.
#   scripts/kld_table.sh [PRESET (demo)] [CTX (128)]      needs build/groak
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-demo}; ctx=${2:-128}
g=$PWD/build/groak; text=$PWD/data/corpus.txt
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$g" synth --preset "$preset" --seed 1 --out "$work/m" >/dev/null 2>&1
vocab=$(sed -n 's/.*"vocab_size": \([0-9]*\).*/\1/p' "$work/m/config.json")
"$g" train-tokenizer --corpus "$text" --vocab "$vocab" --out "$work/m/tokenizer.model" >/dev/null 2>&1
base=$("$g" perplexity --model "$work/m" -f "$text" --ctx "$ctx" --kl-divergence-base "$work/base.kld" 2>/dev/null |
       sed -n 's/^Final estimate: PPL = //p')
echo "preset $preset, ctx $ctx, source (xAI int8) PPL = $base"
echo "| type | file | PPL | mean KLD | same top |"
echo "| --- | ---: | --- | --- | --- |"
for t in f32 f16 bf16 q8_0 q6_k q4_k q4_0; do
  "$g" convert --model "$work/m" --type "$t" --out "$work/$t.gguf" >/dev/null 2>&1
  out=$("$g" perplexity --model "$work/$t.gguf" --kl-divergence-base "$work/base.kld" --kl-divergence 2>/dev/null)
  printf '| %s | %s MB | %s | %s | %s |\n' "$t" "$(( $(stat -c %s "$work/$t.gguf") / 1000000 ))" \
    "$(sed -n 's/^Final estimate: PPL = //p' <<<"$out")" "$(sed -n 's/^Mean KLD: //p' <<<"$out")" \
    "$(sed -n 's/^Same top: //p' <<<"$out")"
done
