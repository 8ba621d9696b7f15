#!/usr/bin/env bash
# The quantization quality table of docs/FORMATS.md: a model converted to every file type by groak convert
# (with an importance matrix from groak imatrix) and, when a llama.cpp build is given, by llama-quantize from
# the same f32 GGUF with the same imatrix; each file scored by groak perplexity --kl-divergence against the
# source. The imatrix is computed on the first half of the text, PPL and KLD on the second half.
#   scripts/quant_table.sh [PRESET (small-k) | MODEL_PATH] [CTX (128)] [TYPES...]
#   GROAK_LLAMA_CPP=/path/to/llama.cpp/build/bin scripts/quant_table.sh     adds llama.cpp's columns
#   GROAK_TEXT=FILE: the text (default data/corpus.txt; models/grok-kjv: its heldout.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-small-k}; ctx=${2:-128}; shift $(( $# > 2 ? 2 : $# ))
g=$PWD/build/groak
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
. scripts/model_or_preset.sh
model_or_preset "$preset"
"$g" convert --model "$work/m" --type F32 --out "$work/f32.gguf" >/dev/null 2>&1
"$g" imatrix --model "$work/m" -f "$work/calib.txt" -c "$ctx" -o "$work/imatrix.dat" >/dev/null 2>&1
base=$("$g" perplexity --model "$work/m" -f "$work/eval.txt" --ctx "$ctx" --kl-divergence-base "$work/base.kld" 2>/dev/null |
       sed -n 's/^Final estimate: PPL = //p')
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S Q4_1 Q4_0 IQ4_NL IQ4_XS Q3_K_L Q3_K_M
                                 Q3_K_S IQ3_M IQ3_S IQ3_XS IQ3_XXS Q2_K Q2_K_S IQ2_M IQ2_S IQ2_XS IQ2_XXS IQ1_M IQ1_S TQ2_0 TQ1_0)
llama=${GROAK_LLAMA_CPP:-}
score() {  # FILE -> "PPL | KLD | same top"
  local out
  out=$("$g" perplexity --model "$1" --kl-divergence-base "$work/base.kld" --kl-divergence 2>/dev/null)
  printf '%s | %s | %s' "$(sed -n 's/^Final estimate: PPL = //p' <<<"$out")" \
    "$(sed -n 's/^Mean KLD: //p' <<<"$out")" "$(sed -n 's/^Same top: //p' <<<"$out")"
}
echo "$what, ctx $ctx, source PPL = $base; imatrix on the first half of the text, scores on the second"
if [ -n "$llama" ]; then
  echo "| type | size | bits/weight | PPL | mean KLD | same top | llama-quantize: PPL | mean KLD | same top |"
  echo "| --- | ---: | ---: | --- | --- | --- | --- | --- | --- |"
else
  echo "| type | size | bits/weight | PPL | mean KLD | same top |"
  echo "| --- | ---: | ---: | --- | --- | --- |"
fi
params=$(( $(stat -c %s "$work/f32.gguf") / 4 ))  # ~ weights (the f32 file is 4 bytes a weight plus metadata)
for t in "${types[@]}"; do
  "$g" convert --model "$work/f32.gguf" --type "$t" --imatrix "$work/imatrix.dat" --out "$work/g.gguf" >/dev/null 2>&1 ||
    { echo "| $t | convert failed |"; continue; }
  size=$(stat -c %s "$work/g.gguf")
  row="| $t | $((size / 1000)) kB | $(awk -v s="$size" -v p="$params" 'BEGIN{printf "%.2f", 8*s/p}') | $(score "$work/g.gguf")"
  if [ -n "$llama" ]; then
    "$llama/llama-quantize" --imatrix "$work/imatrix.dat" "$work/f32.gguf" "$work/l.gguf" "$t" >/dev/null 2>&1 ||
      { echo "$row | llama-quantize failed | | |"; continue; }
    row="$row | $(score "$work/l.gguf")"
  fi
  echo "$row |"
done
