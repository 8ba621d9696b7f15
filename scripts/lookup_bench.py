#!/usr/bin/env python3
"""Lookup decoding, measured: decode tokens per second of one greedy stream through `groak serve` with
--spec-ngram 0 (off) and N, on a task that repeats its prompt (a JSON object to be written again with one
field changed) and on free text; checks that the texts are the same.

  scripts/lookup_bench.py --model /work/grok1-2l-q8_0.gguf --tokenizer ../shared/grok-1/tokenizer.model

Decode speed is the server's own timing (first token to last). Not a test: run it by hand (docs/perf.md).
"""
import argparse
import json
import re
import subprocess
import sys
import urllib.request

from serve_util import start_server

RECORD = {"id": 4817, "name": "Alice Example", "email": "alice@example.com", "roles": ["admin", "editor"],
          "address": {"street": "12 Long Road", "city": "Springfield", "zip": "49007"},
          "active": True, "score": 93.5, "tags": ["alpha", "beta", "gamma", "delta"]}
TASKS = {
    "json": "Here is a user record:\n" + json.dumps(RECORD, indent=2) +
            "\nThe same record with the city changed to Shelbyville:\n" + json.dumps(RECORD, indent=2)[:40],
    "free": "The history of the printing press begins in the fifteenth century, when",
}


def complete(port, prompt, n):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", method="POST",
                                 data=json.dumps({"prompt": prompt, "max_tokens": n, "temperature": 0,
                                                  "ignore_eos": True}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.load(r)


def run(args, ngram):
    cmd = [args.groak, "serve", "--model", args.model, "--port", "0", "--parallel", "1", "-c", str(args.ctx),
           "-t", str(args.threads), "--spec-ngram", str(ngram), "--draft-max", str(args.draft_max)]
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    server, port = start_server(cmd)
    try:
        complete(port, TASKS["free"], 4)  # warm-up: the weights into memory
        out = {}
        for name, prompt in TASKS.items():
            best = None
            for _ in range(args.reps):
                r = complete(port, prompt, args.n)
                t = r["timings"]
                rate = (t["predicted_n"] - 1) / (t["predicted_ms"] / 1000)
                if best is None or rate > best[0]:
                    best = (rate, r["choices"][0]["text"])
            out[name] = best
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        acc = re.search(r"^groak_draft_acceptance_ratio (\S+)", metrics, re.M)
        return out, float(acc.group(1)) if acc else 0.0
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groak", default="build/groak")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer")
    ap.add_argument("--ngram", type=int, default=3)
    ap.add_argument("--draft-max", type=int, default=8)
    ap.add_argument("-n", type=int, default=96, help="tokens generated per request")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048, help="context per slot (at most the model's sequence_len)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    off, _ = run(args, 0)
    on, acceptance = run(args, args.ngram)
    for name in TASKS:
        print(f"{name}: off {off[name][0]:.2f} tok/s, --spec-ngram {args.ngram} {on[name][0]:.2f} tok/s "
              f"({on[name][0] / off[name][0]:.2f}x), same text: {off[name][1] == on[name][1]}")
    print(f"acceptance (both tasks): {acceptance:.2f}")
    print("json text:", json.dumps(on["json"][1][:200]))


if __name__ == "__main__":
    main()
