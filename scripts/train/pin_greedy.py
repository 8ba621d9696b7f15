#!/usr/bin/python3
"""Pins the default model's greedy continuation: tests/fixtures/grok_kjv_greedy.json.

The ids are the argmax chain of `groak logits` (a full forward pass per step, the raw int8 checkpoint, the
reference kernel table: double accumulation), not of `groak generate`, so the test that generates from the
prompt checks the KV-cache path against the plain forward pass. Ties are refused: a top-2 gap below 1e-4
would make the pin depend on summation order.
Usage: scripts/train/pin_greedy.py GROAK MODEL_DIR OUT_JSON [--prompt TEXT] [-n N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("groak")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--prompt", default="And God said")
    ap.add_argument("-n", type=int, default=32)
    a = ap.parse_args()
    tok = os.path.join(a.model, "tokenizer.model")
    prompt = [int(t) for t in subprocess.run([a.groak, "tokenize", "--tokenizer", tok], input=a.prompt, text=True,
                                             capture_output=True, check=True).stdout.split()]
    ids = list(prompt)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        for _ in range(a.n):
            subprocess.run([a.groak, "logits", "-m", a.model, "--kernels", "reference", "--tokens",
                            ",".join(map(str, ids)), "--out", out], check=True, capture_output=True)
            last = np.fromfile(out, dtype="<f4").reshape(len(ids), -1)[-1]
            top2 = np.sort(last)[-2:]
            if top2[1] - top2[0] < 1e-4:
                sys.exit(f"pin_greedy: a near tie at step {len(ids) - len(prompt)}: choose another prompt")
            ids.append(int(np.argmax(last)))
    cont = ids[len(prompt):]
    text = subprocess.run([a.groak, "generate", "-m", a.model, "--prompt", a.prompt, "-n", str(a.n), "--temp", "0",
                           "--ignore-eos"], capture_output=True, text=True, check=True).stdout
    text = text[:-1]  # generate ends its output with one newline of its own
    with open(a.out, "w") as f:
        json.dump({"prompt": a.prompt, "ids": cont, "text": text,
                   "made_by": "scripts/train/pin_greedy.py: the argmax chain of groak logits (reference kernels) on "
                              "models/grok-kjv, the raw int8 checkpoint; the text is groak generate's --temp 0"}, f)
        f.write("\n")
    print(f"pin_greedy: {a.out}: {text!r}")


if __name__ == "__main__":
    main()
