#!/usr/bin/env python3
"""Constrained output's cost per decoded token, measured through `groak serve`: the same sampled request
(temperature 1, seeds alternating) with and without a realistic response_format json_schema, alternating;
the server's own decode timing (1000 / timings.predicted_per_second). The first constrained request is reported
apart: it compiles the schema and computes the token masks of the states it reaches (later requests with
the same schema find them).

  scripts/grammar_overhead.py --model /work/grok1-2l-q8_0.gguf --tokenizer ../shared/grok-1/tokenizer.model

Not a test: run it by hand (docs/perf.md).
"""
import argparse
import json
import pathlib
import statistics
import urllib.request

from serve_util import start_server

# The realistic schema groak_grammar_bench measures too (nested object, enums, an array of objects,
# optional and nullable fields).
SCHEMA = json.loads((pathlib.Path(__file__).resolve().parent.parent / "bench" / "customer_schema.json").read_text())


def complete(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", method="POST",
                                 data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groak", default="build/groak")
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    cmd = [a.groak, "serve", "--model", a.model, "--port", "0", "--parallel", "1", "-c", "1024", "-t", str(a.threads)]
    if a.tokenizer:
        cmd += ["--tokenizer", a.tokenizer]
    server, port = start_server(cmd)
    try:
        base = {"prompt": "A customer record as JSON:", "max_tokens": a.tokens, "temperature": 1.0}
        fmt = {"type": "json_schema", "json_schema": {"name": "customer", "strict": True, "schema": SCHEMA}}
        complete(port, dict(base, max_tokens=4))  # warm-up: weights in memory
        plain, constrained, first = [], [], None
        for r in range(a.rounds):
            p = complete(port, dict(base, seed=r, ignore_eos=True))
            c = complete(port, dict(base, seed=r, response_format=fmt))
            ms_p, ms_c = (1000 / x["timings"]["predicted_per_second"] for x in (p, c))
            json.loads(c["choices"][0]["text"]) if c["choices"][0]["finish_reason"] == "stop" else None
            if first is None:
                first = (ms_c, c["usage"]["completion_tokens"])
                print(f"first constrained request (compiles the schema): {ms_c:.1f} ms/token over {first[1]} tokens")
                continue
            plain.append(ms_p)
            constrained.append(ms_c)
            print(f"round {r}: plain {ms_p:.1f} ms/token, constrained {ms_c:.1f} ms/token "
                  f"({c['usage']['completion_tokens']} tokens, {c['choices'][0]['finish_reason']})")
        mp, mc = statistics.median(plain), statistics.median(constrained)
        print(f"median: plain {mp:.2f} ms/token, constrained {mc:.2f} ms/token: overhead {100 * (mc - mp) / mp:+.1f} %")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
