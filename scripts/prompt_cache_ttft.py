#!/usr/bin/env python3
"""The prompt cache, measured: time to first token of a request that shares a long prefix with one served
two requests earlier, through `groak serve` with one slot (so the middle request takes the slot over and
the prefix survives only in the prompt cache), with the cache off and on. Also checks that the two runs
give the same greedy text.

  scripts/prompt_cache_ttft.py --model /work/grok1-2l-q8_0.gguf --tokenizer ../shared/grok-1/tokenizer.model \\
      --text models/grok-kjv/heldout.txt --prefix 2000

Not a test: run it by hand (docs/perf.md has the numbers).
"""
import argparse
import http.client
import json
import re
import subprocess
import sys
import time

from serve_util import start_server


def first_token(port, prompt):
    """(seconds to the first streamed token, the whole text, usage) of a greedy 4-token completion."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    body = json.dumps({"prompt": prompt, "max_tokens": 4, "temperature": 0, "stream": True, "ignore_eos": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.time()
    c.request("POST", "/v1/completions", body, {"content-type": "application/json"})
    r = c.getresponse()
    first, text, usage = None, "", None
    for line in r:
        if not line.startswith(b"data: ") or b"[DONE]" in line:
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            usage = chunk["usage"]
        for ch in chunk.get("choices", []):
            if first is None:
                first = time.time() - t0
            text += ch.get("text", "")
    return first, text, usage


def run(args, cache_mb, tokens):
    cmd = [args.groak, "serve", "--model", args.model, "--port", "0", "--parallel", "1", "-c", str(args.ctx),
           "-t", str(args.threads), "--cache-ram", str(cache_mb)]
    cmd += ["--tokenizer", args.tokenizer]
    server, port = start_server(cmd)
    try:
        p = tokens[:args.prefix]
        a = first_token(port, p + tokens[args.prefix:args.prefix + 10])
        b = first_token(port, tokens[args.prefix + 20:args.prefix + 220])
        c = first_token(port, p + tokens[args.prefix + 10:args.prefix + 20])
        return {"a": a[0], "b": b[0], "c": c[0], "c_text": c[1], "c_cached_tokens":
                (c[2] or {}).get("prompt_tokens_details", {}).get("cached_tokens")}
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groak", default="build/groak")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True, help="the model's SentencePiece tokenizer.model")
    ap.add_argument("--text", default="models/grok-kjv/heldout.txt", help="text whose tokens make the prompts")
    ap.add_argument("--prefix", type=int, default=2000, help="tokens the first and third request share")
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-ram", type=int, default=2048, help="MB for the cached run")
    args = ap.parse_args()
    with open(args.text, "rb") as f:
        ids = subprocess.run([args.groak, "tokenize", "--tokenizer", args.tokenizer], stdin=f, capture_output=True,
                             text=True, check=True).stdout
    tokens = [int(x) for x in re.findall(r"-?\d+", ids)]
    if len(tokens) < args.prefix + 220:
        sys.exit(f"{args.text} has {len(tokens)} tokens; it needs {args.prefix + 220}")
    off, on = run(args, 0, tokens), run(args, args.cache_ram, tokens)
    print(json.dumps({"off": off, "on": on, "speedup": off["c"] / on["c"], "same_text": off["c_text"] == on["c_text"]},
                     indent=1))


if __name__ == "__main__":
    main()
