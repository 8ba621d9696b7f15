#!/usr/bin/env bash
# Re-makes models/grok-kjv, the embedded default model: trains it (train_grok.py, about an hour on 2 cores),
# writes it in xAI's raw format through groak's own writer (groak convert --format xai) and records a
# manifest (sha256 of every file, corpus, steps, held-out loss, training time), then pins its greedy
# continuation for the tests (pin_greedy.py).
# Usage: scripts/train/make_default_model.sh [WORK_DIR [train_grok.py options...]] (a WORK_DIR that holds a
# finished run, and no options: that run is converted, not trained again)
# Needs Debian's python3-torch, python3-sentencepiece, bible-kjv (docs/DEFAULT_MODEL.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/grok-kjv-train}; shift || true
out=models/grok-kjv
for p in python3-torch python3-sentencepiece python3-numpy bible-kjv libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "make_default_model: needs the Debian package $p (apt-get install $p)" >&2; exit 1; }
done
BUILD_TARGET=groak scripts/build.sh build >&2
if [ -f "$work/train_log.json" ] && [ $# -eq 0 ]; then
  echo "make_default_model: $work holds a finished training run; using it (remove it to train again)" >&2
else
  /usr/bin/python3 scripts/train/train_grok.py --out "$work" "$@"
fi
rm -rf "$out.new"
build/groak convert -m "$work" --format xai --out "$out.new"
cp "$work/heldout.txt" "$out.new/heldout.txt"
/usr/bin/python3 - "$work" "$out.new" <<'EOF'
import hashlib, json, os, sys
work, out = sys.argv[1], sys.argv[2]
log = json.load(open(os.path.join(work, "train_log.json")))
files = {}
for root, _, names in os.walk(out):
    for n in sorted(names):
        p = os.path.join(root, n)
        files[os.path.relpath(p, out)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
m = {
    "model": "grok-kjv: Grok-1's architecture (model.py), trained from scratch",
    "corpus": "King James Version of the Bible, Debian package bible-kjv-text (public domain); every "
              f"{log['args']['heldout_every']}th chapter held out (heldout.txt)",
    "training_config": log["config"],
    "export": "Grok-1's multipliers (embedding 78.38367176906169, attention logits 0.08838834764831845, output "
              "0.5773502691896257) folded exactly into the embedding, final norm and query weights "
              "(train_grok.py to_grok1_constants); config.json states them",
    "args": log["args"], "torch": log["torch"],
    "heldout_loss": log["heldout"][-1][1], "heldout_loss_by_step": log["heldout"],
    "final_train_loss": log["steps"][-1][1], "train_seconds": log["train_seconds"],
    "total_seconds": log["total_seconds"], "threads": log["args"]["threads"],
    "format": "xAI raw checkpoint (ckpt-0 pickles: int8 weights, bf16 scales) via groak convert --format xai",
    "sha256": dict(sorted(files.items())),
}
with open(os.path.join(out, "MANIFEST.json"), "w") as f:
    json.dump(m, f, indent=1)
    f.write("\n")
EOF
rm -rf "$out" && mv "$out.new" "$out"
du -sh "$out"
/usr/bin/python3 scripts/train/pin_greedy.py build/groak "$out" tests/fixtures/grok_kjv_greedy.json
