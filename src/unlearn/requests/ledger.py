"""The request ledger: one SQLite file recording every removal request a state directory has seen.

Each row is one request: its id, content hash, target, kind, counts, method and settings, technique,
status (pending, applied, rejected, rolled_back), timestamps, checkpoint file and checksum, metrics before
and after, the verification outcome, and the request's forget probes with sealed (hashed) answers for later
relapse checks. The table `forgotten` keeps salted fingerprints of each request's forget items, so that later
retain sets can be kept from re-teaching them (requests/forgotten.py). The raw request is kept only when
the state was created with `keep_data`.

Every change is one SQLite transaction, so a crash leaves either the old or the new row, never half of one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnlearnError

SCHEMA_VERSION = "1"
STATUSES = ("pending", "applied", "rejected", "rolled_back")
JSON_COLUMNS = ("counts", "method", "settings", "metrics_before", "metrics_after", "verification", "sealed_probes",
                "timings", "request")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    content_hash TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    counts TEXT NOT NULL,
    method TEXT NOT NULL,
    settings TEXT NOT NULL,
    technique TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    received TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    checkpoint TEXT,
    checkpoint_sha256 TEXT,
    folded INTEGER NOT NULL DEFAULT 0,
    metrics_before TEXT,
    metrics_after TEXT,
    verification TEXT,
    sealed_probes TEXT NOT NULL,
    timings TEXT,
    request TEXT
);
CREATE TABLE IF NOT EXISTS forgotten (
    request_id TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (request_id, digest)
);
CREATE TABLE IF NOT EXISTS baselines (probe_hash TEXT PRIMARY KEY, metrics TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    at TEXT NOT NULL, request_id TEXT, event TEXT NOT NULL, detail TEXT NOT NULL DEFAULT ''
);
"""


@dataclass
class Entry:
    """One ledger row, JSON columns decoded."""

    seq: int
    id: str
    content_hash: str
    target: str
    kind: str
    status: str
    technique: str
    received: str
    counts: dict = field(default_factory=dict)
    method: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    reason: str = ""
    started: str | None = None
    finished: str | None = None
    attempts: int = 0
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    folded: bool = False
    metrics_before: dict | None = None
    metrics_after: dict | None = None
    verification: dict | None = None
    sealed_probes: list = field(default_factory=list)
    timings: dict | None = None
    request: dict | None = None

    def accuracy(self, when: str, group: str = "forget") -> float | None:
        """Accuracy of probe `group` in `metrics_before` or `metrics_after` (`when`), None when not measured."""
        metrics = self.metrics_before if when == "before" else self.metrics_after
        return (metrics or {}).get("groups", {}).get(group, {}).get("accuracy")

    def summary(self) -> dict[str, Any]:
        """The row without the bulky columns (probes, raw request, full metrics)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("sealed_probes", "request", "metrics_before",
                                                                     "metrics_after", "verification")}


def _encoded(columns: dict[str, Any]) -> list[Any]:
    """Column values as stored: JSON columns as JSON text."""
    return [json.dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in columns.items()]


def _row_to_entry(row: sqlite3.Row) -> Entry:
    data = dict(row)
    for key in JSON_COLUMNS:
        if data.get(key) is not None:
            data[key] = json.loads(data[key])
    data["folded"] = bool(data["folded"])
    return Entry(**data)


class Ledger:
    """The SQLite ledger of one state directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise UnlearnError(f"cannot open the ledger {self.path}: {exc}") from None
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=DELETE")
        self.conn.execute("PRAGMA synchronous=FULL")
        with self.transaction() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; any exception rolls everything back."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # meta -------------------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, conn: sqlite3.Connection, **values: Any) -> None:
        for key, value in values.items():
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # requests ---------------------------------------------------------------------------------------------
    def get(self, request_id: str) -> Entry | None:
        row = self.conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        return _row_to_entry(row) if row else None

    def entries(self, status: str | None = None) -> list[Entry]:
        if status:
            rows = self.conn.execute("SELECT * FROM requests WHERE status = ? ORDER BY seq", (status,))
        else:
            rows = self.conn.execute("SELECT * FROM requests ORDER BY seq")
        return [_row_to_entry(r) for r in rows]

    def insert(self, conn: sqlite3.Connection, **columns: Any) -> None:
        names, values = list(columns), _encoded(columns)
        conn.execute(f"INSERT INTO requests({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values)

    def update(self, conn: sqlite3.Connection, request_id: str, **columns: Any) -> None:
        if "status" in columns and columns["status"] not in STATUSES:
            raise ValueError(f"unknown status {columns['status']}")
        names, values = list(columns), _encoded(columns)
        conn.execute(f"UPDATE requests SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?", [*values, request_id])

    # fingerprints of forget items ------------------------------------------------------------------------
    def set_forgotten(self, conn: sqlite3.Connection, request_id: str, digests: set[str]) -> None:
        conn.execute("DELETE FROM forgotten WHERE request_id = ?", (request_id,))
        conn.executemany("INSERT INTO forgotten(request_id, digest) VALUES (?, ?)",
                         [(request_id, d) for d in sorted(digests)])

    def has_forgotten(self, request_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM forgotten WHERE request_id = ? LIMIT 1", (request_id,)).fetchone() is not None

    def forgotten(self, request_ids: list[str]) -> set[str]:
        """The forget-item fingerprints of the requests `request_ids`."""
        digests: set[str] = set()
        for request_id in request_ids:
            rows = self.conn.execute("SELECT digest FROM forgotten WHERE request_id = ?", (request_id,))
            digests.update(r["digest"] for r in rows)
        return digests

    # baselines and events ---------------------------------------------------------------------------------
    def baseline(self, probe_hash: str) -> dict | None:
        row = self.conn.execute("SELECT metrics FROM baselines WHERE probe_hash = ?", (probe_hash,)).fetchone()
        return json.loads(row["metrics"]) if row else None

    def set_baseline(self, conn: sqlite3.Connection, probe_hash: str, metrics: dict) -> None:
        conn.execute("INSERT OR REPLACE INTO baselines(probe_hash, metrics) VALUES (?, ?)",
                     (probe_hash, json.dumps(metrics)))

    def log(self, conn: sqlite3.Connection, at: str, request_id: str | None, event: str, detail: str = "") -> None:
        conn.execute("INSERT INTO events(at, request_id, event, detail) VALUES (?, ?, ?, ?)",
                     (at, request_id, event, detail))

    def events(self, request_id: str | None = None) -> list[dict[str, Any]]:
        if request_id:
            rows = self.conn.execute("SELECT * FROM events WHERE request_id = ? ORDER BY rowid", (request_id,))
        else:
            rows = self.conn.execute("SELECT * FROM events ORDER BY rowid")
        return [dict(r) for r in rows]
