#!/usr/bin/env python3
"""A bounded load test of `groak serve` on loopback: two identical storms of C concurrent clients making
R requests in all (mixed: completions, streamed chat, tokenize, a few bad requests and clients that hang
up mid-stream). Passes when every answer is 200, 400 (the deliberately bad ones) or 503 (queue full),
the server never dies, and its resident memory after the second storm is within --rss-slack of the
first (no growth per request). Stops by itself. Not a test: run it by hand and read the numbers.

  scripts/load_serve.py                      # synthesises a tiny model in a temporary folder
  scripts/load_serve.py --clients 64 --requests 400
"""
import argparse
import collections
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from serve_util import start_server


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def request(port, path, body, timeout=300):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def hang_up(port):
    """Starts a long stream and hangs up after the first bytes (the slot must be freed)."""
    body = json.dumps({"prompt": "hang up", "max_tokens": 200, "stream": True, "ignore_eos": True}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    head = s.recv(4096)
    s.close()
    m = re.match(rb"HTTP/1.1 (\d+)", head)
    return int(m.group(1)) if m else -1


def one(port, i, rng):
    kind = rng.random()
    name = ("completion" if kind < 0.45 else "chat-stream" if kind < 0.75 else "tokenize" if kind < 0.85
            else "bad" if kind < 0.93 else "hang-up")
    try:
        return call(port, i, rng, kind)
    except Exception as e:  # a refused or reset connection counts as a failure
        return name, type(e).__name__


def call(port, i, rng, kind):
    if kind < 0.45:
        return "completion", request(port, "/v1/completions",
                                     {"prompt": f"Request {i}: once upon a time", "max_tokens": rng.randint(1, 24),
                                      "temperature": rng.choice([0, 0.8])})
    if kind < 0.75:
        return "chat-stream", request(port, "/v1/chat/completions",
                                      {"messages": [{"role": "user", "content": f"Hello number {i}"}],
                                       "max_tokens": rng.randint(1, 24), "stream": True})
    if kind < 0.85:
        return "tokenize", request(port, "/tokenize", {"content": "some text " * rng.randint(1, 50)})
    if kind < 0.93:
        return "bad", request(port, "/v1/completions", {"prompt": "x", "top_p": 7})
    return "hang-up", hang_up(port)


def storm(port, clients, total, seed):
    counts = collections.Counter()
    lock = threading.Lock()
    next_i = [0]

    def client(c):
        rng = random.Random(seed * 1000 + c)
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= total:
                return
            kind, status = one(port, i, rng)
            with lock:
                counts[(kind, status)] += 1

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groak", default=os.path.join(os.path.dirname(__file__), "..", "build", "groak"))
    ap.add_argument("--model", help="default: a tiny synthetic model made here")
    ap.add_argument("--tokenizer")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=300, help="requests per storm")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--queue", type=int, default=16)
    ap.add_argument("--rss-slack", type=float, default=0.10, help="allowed RSS growth from storm 1 to storm 2")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="groak-load-")
    model, tok = args.model, args.tokenizer
    if not model:
        model = os.path.join(tmp.name, "model")
        subprocess.run([args.groak, "synth", "--preset", "tiny", "--seed", "9", "--out", model], check=True,
                       capture_output=True)
        corpus = os.path.join(os.path.dirname(__file__), "..", "data", "corpus.txt")
        subprocess.run([args.groak, "train-tokenizer", "--corpus", corpus, "--vocab", "512", "--out",
                        os.path.join(model, "tokenizer.model")], check=True, capture_output=True)
    cmd = [args.groak, "serve", "--model", model, "--port", "0", "--parallel", str(args.parallel), "--queue",
           str(args.queue), "--ctx-size", "512", "-t", "2"]
    if tok:
        cmd += ["--tokenizer", tok]
    server, port = start_server(cmd)
    ok = True
    try:
        rss0 = rss_kb(server.pid)
        results = []
        for n in (1, 2):
            counts, secs = storm(port, args.clients, args.requests, seed=1)  # identical storms
            time.sleep(1)  # let the slots of hung-up clients be reclaimed
            rss = rss_kb(server.pid)
            alive = server.poll() is None
            statuses = collections.Counter()
            for (kind, status), c in counts.items():
                statuses[status] += c
            print(f"storm {n}: {sum(counts.values())} requests from {args.clients} clients in {secs:.1f} s; "
                  f"statuses {dict(sorted(statuses.items(), key=str))}; server RSS {rss / 1024:.1f} MiB; "
                  f"alive {alive}")
            for (kind, status), c in sorted(counts.items(), key=str):
                print(f"    {kind:12s} {status}: {c}")
            bad = {s for s in statuses if s not in (200, 400, 503)}
            bad_400 = sum(c for (kind, status), c in counts.items() if status == 400 and kind != "bad")
            if bad or bad_400 or not alive:
                ok = False
            results.append(rss)
        growth = (results[1] - results[0]) / results[0]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        busy = int(re.search(r"^groak_slots_busy (\d+)", metrics, re.M).group(1))
        queued = int(re.search(r"^groak_queue_length (\d+)", metrics, re.M).group(1))
        cancelled = re.search(r'reason="cancelled"\} (\d+)', metrics).group(1)
        print(f"RSS: start {rss0 / 1024:.1f} MiB, after storm 1 {results[0] / 1024:.1f} MiB, after storm 2 "
              f"{results[1] / 1024:.1f} MiB ({growth * 100:+.1f} %); afterwards busy slots {busy}, queue {queued}, "
              f"cancelled sequences {cancelled}")
        if growth > args.rss_slack or busy or queued:
            ok = False
    finally:
        server.terminate()
        server.wait()
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
