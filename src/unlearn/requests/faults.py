"""Fault injection for the crash tests: kill this process at a named point of `unlearn apply` or of the
server's forget endpoint (`unlearn serve`, POST /admin/requests).

UNLEARN_KILL_AT='point' (or 'point:n', the n-th time the point is reached) sends SIGKILL to the running
process there, exactly as an out-of-memory kill or a power cut would end it: no handler runs.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "UNLEARN_KILL_AT"
POINTS = ("before-training", "training", "before-checkpoint", "checkpoint-written", "after-checkpoint",
          "before-ledger", "after-ledger", "fold-after-write", "fold-after-ledger", "before-export",
          "serve-before-request-file", "serve-request-file-written", "serve-state-written")
_hits: dict[str, int] = {}


def kill_point(name: str) -> None:
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
