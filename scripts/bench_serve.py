#!/usr/bin/env python3
"""Continuous batching, measured: aggregate decode throughput of P concurrent greedy streams against one,
through `groak serve` on loopback. Also checks that each stream's greedy text is the same batched as alone.

  scripts/bench_serve.py --model /work/grok1-2l-q8_0.gguf --tokenizer ../shared/grok-1/tokenizer.model

Decode throughput is the server's own per-request timing (first token to last token, the first token
being the prompt pass's): one stream = (n-1)/decode_s; P streams = sum(n-1)/max(decode_s). Each run is
repeated (--reps) after a warm-up that reads the weights into memory; the ratio is given of the best
runs and of the medians (on a shared machine single runs vary a lot), and of CPU seconds per generated
token (prompt passes included). Not a test: run it by hand.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

from serve_util import start_server

PROMPTS = [
    "The history of the printing press begins",
    "In the deep ocean, far below the reach of",
    "A recipe for bread needs flour, water and",
    "The committee met on Tuesday to discuss the",
    "Mountains form where two tectonic plates",
    "The first computers filled entire rooms and",
    "Every language has words for colours, but",
    "On the night of the storm, the lighthouse",
]


def post(port, path, body, timeout=3600):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def complete(port, prompt, n):
    return post(port, "/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True})


def run_parallel(port, prompts, n):
    out = [None] * len(prompts)

    def one(i):
        out[i] = complete(port, prompts[i], n)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def decode_rate(results):
    toks = sum(r["usage"]["completion_tokens"] - 1 for r in results)
    secs = max(r["timings"]["predicted_ms"] for r in results) / 1e3
    return toks / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer")
    ap.add_argument("--groak", default=os.path.join(os.path.dirname(__file__), "..", "build", "groak"))
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("-n", type=int, default=16, help="tokens per stream")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    cmd = [args.groak, "serve", "--model", args.model, "--port", "0", "--parallel", str(args.parallel),
           "--ctx-size", "256"]
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    if args.threads:
        cmd += ["-t", str(args.threads)]
    server, port = start_server(cmd, echo=True)
    try:

        prompts = PROMPTS[:args.parallel]
        print(f"warm-up (reads the weights into memory) ...", file=sys.stderr)
        run_parallel(port, prompts, 2)
        # Besides wall time, CPU seconds per generated token: on a machine shared with other work a
        # memory-bound step's wall time stretches while its CPU time barely moves.
        solo_rates, solo_text, solo_cpu, solo_tokens = [], {}, 0.0, 0
        for rep in range(args.reps):
            for p in prompts if rep == 0 else prompts[:1]:
                c0 = cpu_seconds(server.pid)
                r = complete(port, p, args.n)
                solo_cpu += cpu_seconds(server.pid) - c0
                solo_tokens += r["usage"]["completion_tokens"]
                solo_text[p] = r["choices"][0]["text"]
                if p == prompts[0]:
                    solo_rates.append(decode_rate([r]))
                    print(f"  1 stream : {solo_rates[-1]:.3f} tok/s", file=sys.stderr)
        par_rates, same, par_cpu, par_tokens = [], True, 0.0, 0
        for rep in range(args.reps):
            c0 = cpu_seconds(server.pid)
            rs = run_parallel(port, prompts, args.n)
            par_cpu += cpu_seconds(server.pid) - c0
            par_tokens += sum(r["usage"]["completion_tokens"] for r in rs)
            par_rates.append(decode_rate(rs))
            print(f"  {args.parallel} streams: {par_rates[-1]:.3f} tok/s aggregate", file=sys.stderr)
            for p, r in zip(prompts, rs):
                if r["choices"][0]["text"] != solo_text[p]:
                    same = False
                    print(f"  DIFFERENT batched text for {p!r}", file=sys.stderr)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        batched = re.search(r"^groak_batched_steps_total (\d+)", metrics, re.M).group(1)
        one, many = max(solo_rates), max(par_rates)
        med = lambda v: sorted(v)[len(v) // 2]
        print(json.dumps({"model": args.model, "tokens_per_stream": args.n, "parallel": args.parallel,
                          "one_stream_tok_s": round(one, 3), "aggregate_tok_s": round(many, 3),
                          "ratio": round(many / one, 3),
                          "median_one_tok_s": round(med(solo_rates), 3), "median_aggregate_tok_s": round(med(par_rates), 3),
                          "median_ratio": round(med(par_rates) / med(solo_rates), 3),
                          "cpu_s_per_token_1": round(solo_cpu / solo_tokens, 4),
                          "cpu_s_per_token_parallel": round(par_cpu / par_tokens, 4),
                          "cpu_ratio": round((solo_cpu / solo_tokens) / (par_cpu / par_tokens), 3),
                          "load_average": os.getloadavg()[0], "batched_text_equals_solo": same,
                          "batched_steps": int(batched)}, indent=1))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
