"""Shared by the hand-run server measurements (bench_serve, load_serve, prompt_cache_ttft, lookup_bench):
start `groak serve` on a free port and wait until it is ready."""
import re
import subprocess
import sys
import threading


def start_server(cmd, echo=False):
    """(process, port) of `groak serve` started with cmd (which must hold --port 0), once it says ready;
    exits with a message if it never does. Its stderr is drained in the background (echoed if asked)."""
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    for line in server.stderr:
        if echo:
            sys.stderr.write(line)
        m = re.search(r"listening on http://[^:]+:(\d+)/", line)
        if m:
            port = int(m.group(1))
        if "ready:" in line:
            break
    if port is None or server.poll() is not None:
        server.kill()
        sys.exit("the server did not start: " + " ".join(cmd))
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    return server, port
