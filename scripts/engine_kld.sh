#!/usr/bin/env bash
# groak's arithmetic beside llama.cpp's on the same quantized files: a synthetic model converted to f32 GGUF,
# each type made from it by llama.cpp's llama-quantize, then scored by both engines on the same text, each
# against its own run of the f32 file (groak perplexity --kl-divergence, llama-perplexity --kl-divergence).
# Both keep the KV cache in f32 (groak's default; llama.cpp's -ctk/-ctv f32), so the columns differ only by
# what each engine does with 8-bit activations and in what order it sums.
#   GROAK_LLAMA_CPP=/path/to/llama.cpp/build/bin scripts/engine_kld.sh [PRESET (small-k) | MODEL_PATH] [CTX (128)] [TYPES...]
#   a model path instead of a preset: that model (models/grok-kjv: its held-out text unless GROAK_TEXT says)
set -euo pipefail
cd "$(dirname "$0")/.."
llama=${GROAK_LLAMA_CPP:?set GROAK_LLAMA_CPP to a llama.cpp build/bin folder (llama-quantize, llama-perplexity)}
preset=${1:-small-k}; ctx=${2:-128}; shift $(( $# > 2 ? 2 : $# ))
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(Q8_0 Q6_K Q5_K_M Q4_K_M Q4_0 IQ4_XS Q3_K_M IQ3_XS Q2_K)  # (IQ2_* and IQ1_* need an imatrix in llama-quantize)
g=$PWD/build/groak
threads=${GROAK_THREADS:-2}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
. scripts/model_or_preset.sh
model_or_preset "$preset"
"$g" convert --model "$work/m" --type F32 --out "$work/f32.gguf" >/dev/null 2>&1
gb=$("$g" perplexity --model "$work/f32.gguf" -f "$work/eval.txt" --ctx "$ctx" -t "$threads" \
  --kl-divergence-base "$work/g.kld" 2>/dev/null)
lb=$("$llama/llama-perplexity" -m "$work/f32.gguf" -f "$work/eval.txt" -c "$ctx" -t "$threads" -ctk f32 -ctv f32 \
  --kl-divergence-base "$work/l.kld" 2>&1)
field() { sed -n "s/^$1 *: *//p" | head -1 | sed 's/ *+\/- */ ± /; s/ *± */ ± /'; }
echo "$what (second half), ctx $ctx; llama.cpp $("$llama/llama-perplexity" --version 2>&1 | sed -n 's/^version: //p')"
echo "the f32 GGUF: groak PPL $(sed -n 's/^Final estimate: PPL = //p' <<<"$gb" | sed 's/ *+\/- */ ± /'), llama.cpp PPL" \
     "$(sed -n 's/.*Final estimate: PPL = //p' <<<"$lb" | sed 's/ *+\/- */ ± /')"
echo "| type | groak: mean KLD | same top | llama.cpp: mean KLD | same top |"
echo "| --- | --- | --- | --- | --- |"
for t in "${types[@]}"; do
  "$llama/llama-quantize" "$work/f32.gguf" "$work/q.gguf" "$t" >/dev/null 2>&1 || { echo "| $t | llama-quantize failed | | | |"; continue; }
  go=$("$g" perplexity --model "$work/q.gguf" -t "$threads" --kl-divergence-base "$work/g.kld" --kl-divergence 2>/dev/null)
  lo=$("$llama/llama-perplexity" -m "$work/q.gguf" -c "$ctx" -t "$threads" -ctk f32 -ctv f32 --kl-divergence-base "$work/l.kld" --kl-divergence 2>&1)
  echo "| $t | $(field 'Mean KLD' <<<"$go") | $(field 'Same top' <<<"$go") | $(field 'Mean    KLD' <<<"$lo") | $(field 'Same top p' <<<"$lo" | sed 's/ %$//; s/ ± \(.*\)/% ± \1%/') |"
done
