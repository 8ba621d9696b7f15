# Sourced by the quality scripts: makes $work/m the model to measure and splits its text in halves.
#   $1: a synth preset name, or the path of a model (a trained one brings heldout.txt, used unless GROAK_TEXT)
# Needs $g (build/groak) and $work; sets $what (for the header line) and writes $work/calib.txt (first half
# of the text's lines) and $work/eval.txt (second half).
model_or_preset() {
  local arg=$1 text=${GROAK_TEXT:-data/corpus.txt} lines
  if [ -e "$arg" ]; then
    [ -n "${GROAK_TEXT:-}" ] || [ ! -f "$arg/heldout.txt" ] || text=$arg/heldout.txt
    ln -s "$(realpath "$arg")" "$work/m"
    what="model $arg"
  else
    "$g" synth --preset "$arg" --seed 1 --out "$work/m" >/dev/null 2>&1
    what="preset $arg (random weights)"
  fi
  what="$what; text $text"
  lines=$(wc -l < "$text")
  head -n $((lines / 2)) "$text" > "$work/calib.txt"
  tail -n +$((lines / 2 + 1)) "$text" > "$work/eval.txt"
}
