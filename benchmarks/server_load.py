"""Load on `unlearn serve` with the embedded model: parallel clients of short chat completions while forget
requests arrive; errors, lost requests and latency percentiles.

    python benchmarks/server_load.py [--clients 16] [--calls 20] [--max-tokens 8] [--forget 4]
                                     [--guards refusal_filter] [--json server_load.json]

The server runs in this process on a free 127.0.0.1 port with a fresh state directory; calls go over HTTP.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time

from unlearn.guards.load import run_load
from unlearn.guards.server import build_server


def forget_requests(n: int) -> list[dict]:
    return [{"id": f"load-{i}", "target": f"Person {i}",
             "forget": {"texts": [f"Person {i} was born in town number {i}."]}} for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--forget", type=int, default=4)
    parser.add_argument("--guards", default="refusal_filter")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    guards = [{"name": g.strip()} for g in args.guards.split(",") if g.strip()]
    with tempfile.TemporaryDirectory() as state:
        start = time.perf_counter()
        httpd, app = build_server("default", state, guards, token="load-token", port=0)
        startup_s = time.perf_counter() - start
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        try:
            report = run_load(url, "load-token", args.clients, args.calls, forget_requests(args.forget),
                              args.max_tokens)
        finally:
            httpd.shutdown()
            httpd.server_close()
    result = {"clients": args.clients, "calls_per_client": args.calls, "max_tokens": args.max_tokens,
              "guards": [g["name"] for g in guards], "startup_s": round(startup_s, 1), **report.summary(),
              "error_samples": report.errors[:5], "lost": report.lost_requests}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
