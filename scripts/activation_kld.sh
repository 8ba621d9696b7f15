#!/usr/bin/env bash
# What each kernel table's arithmetic costs on one file: the reference table (scalar, f32 activations against
# the dequantised weights, double accumulation) saves its log-probabilities, and every other table this CPU
# has (portable, avx2, avx512vnni: 8-bit activations for the quantised types, as llama.cpp) is scored
# against them with groak perplexity --kl-divergence. Table of docs/FORMATS.md.
#   scripts/activation_kld.sh [MODEL (models/grok-kjv)] [CHUNKS (8)] [TYPES... (Q8_0 Q6_K Q4_K_M Q4_0 IQ4_XS Q2_K)]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/grok-kjv}; chunks=${2:-8}; shift $(( $# > 2 ? 2 : $# ))
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(Q8_0 Q6_K Q4_K_M Q4_0 IQ4_XS Q2_K)
g=$PWD/build/groak
text=${GROAK_TEXT:-$model/heldout.txt}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
tables=()
for k in portable avx2 avx512vnni; do
  "$g" logits --model "$model" --tokens 1 --out "$work/probe" --kernels "$k" >/dev/null 2>&1 && tables+=("$k")
done
echo "model $model, text $text, $chunks windows of 512 (second halves scored); base: --kernels reference"
echo "| file | $(printf '%s: mean KLD | same top | ' "${tables[@]}")"
echo "| --- |$(printf ' --- | --- |%.0s' "${tables[@]}")"
for t in raw "${types[@]}"; do
  f=$model
  if [ "$t" != raw ]; then
    f=$work/$t.gguf
    "$g" convert --model "$model" --type "$t" --out "$f" >/dev/null 2>&1
  fi
  "$g" perplexity --model "$f" -f "$text" --chunks "$chunks" --kernels reference --kl-divergence-base "$work/base.kld" >/dev/null 2>&1
  row="| $t |"
  for k in "${tables[@]}"; do
    out=$("$g" perplexity --model "$f" --kernels "$k" --kl-divergence-base "$work/base.kld" --kl-divergence 2>/dev/null)
    row="$row $(sed -n 's/^Mean KLD: //p' <<<"$out") | $(sed -n 's/^Same top: //p' <<<"$out") |"
  done
  echo "$row"
done
