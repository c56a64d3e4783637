"""A bounded load test of a running `unlearn serve`: parallel clients of short completions, forget requests
posted while they run; every call's status and latency, and whether every posted request is guarded after.

    from unlearn.guards.load import run_load
    report = run_load("http://127.0.0.1:8000", token, clients=16, calls=20, forget_requests=[...])
    report.errors, report.percentiles()   # [] and {"p50": ..., "p90": ..., "p99": ..., "max": ...} in ms
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class LoadReport:
    """Latencies (seconds) of the completions and of the forget posts, and every failed call."""

    completion_s: list[float] = field(default_factory=list)
    forget_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lost_requests: list[str] = field(default_factory=list)  # posted, but not guarded afterwards
    wall_s: float = 0.0

    def percentiles(self, which: str = "completion") -> dict[str, float]:
        values = sorted(self.completion_s if which == "completion" else self.forget_s)
        if not values:
            return {}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731 - nearest rank
        return {"p50_ms": 1000 * pick(0.5), "p90_ms": 1000 * pick(0.9), "p99_ms": 1000 * pick(0.99),
                "max_ms": 1000 * values[-1]}

    def summary(self) -> dict:
        return {"completions": len(self.completion_s), "forget_requests": len(self.forget_s),
                "errors": len(self.errors), "lost_requests": len(self.lost_requests), "wall_s": round(self.wall_s, 2),
                "completions_per_s": round(len(self.completion_s) / self.wall_s, 2) if self.wall_s else None,
                "completion_latency": {k: round(v, 1) for k, v in self.percentiles("completion").items()},
                "forget_latency": {k: round(v, 1) for k, v in self.percentiles("forget").items()}}


def _call(url: str, path: str, body: dict | None = None, token: str | None = None,
          timeout: float = 300) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def run_load(url: str, token: str, clients: int = 16, calls: int = 20, forget_requests: list[dict] = (),
             max_tokens: int = 8, prompts: list[str] | None = None) -> LoadReport:
    """`clients` threads each make `calls` chat completions of `max_tokens`; meanwhile one more thread posts
    `forget_requests` (dicts in the request schema), spread over the run. Then checks that each is guarded."""
    prompts = prompts or ["What is the capital of France?", "Name a primary colour.", "How many legs has a cat?"]
    report = LoadReport()
    lock = threading.Lock()

    def record(kind: str, seconds: float, status: int, expected: tuple[int, ...], payload: dict) -> None:
        with lock:
            (report.completion_s if kind == "completion" else report.forget_s).append(seconds)
            if status not in expected:
                report.errors.append(f"{kind}: HTTP {status} {json.dumps(payload)[:200]}")

    def timed(kind: str, path: str, body: dict, expected: tuple[int, ...], auth: str | None = None) -> None:
        start = time.perf_counter()
        try:
            status, payload = _call(url, path, body, auth)
        except OSError as exc:  # refused, reset, timed out
            status, payload = 0, {"error": f"{type(exc).__name__}: {exc}"}
        record(kind, time.perf_counter() - start, status, expected, payload)

    def client(index: int) -> None:
        for call in range(calls):
            body = {"messages": [{"role": "user", "content": prompts[(index + call) % len(prompts)]}],
                    "max_tokens": max_tokens}
            timed("completion", "/v1/chat/completions", body, (200,))

    def poster() -> None:
        for request in forget_requests:
            time.sleep(0.05)
            timed("forget", "/admin/requests", request, (200, 201), token)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients + 1) as pool:
        futures = [pool.submit(client, i) for i in range(clients)] + [pool.submit(poster)]
        for future in futures:
            future.result()
    report.wall_s = time.perf_counter() - start
    status, listed = _call(url, "/admin/requests", token=token)
    guarded = {r["id"] for r in listed.get("requests", [])} if status == 200 else set()
    report.lost_requests = [r["id"] for r in forget_requests if r["id"] not in guarded]
    return report
