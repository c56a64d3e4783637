"""A state directory: the ledger, the checkpoints, the lock, and the current model they describe.

    DIR/ledger.sqlite        the request ledger (requests/ledger.py)
    DIR/lock                 held (flock) by the one process applying requests; the OS frees it on exit
    DIR/checkpoints/         one delta file per live request, plus folded-N.safetensors (older deltas summed)
    DIR/model/               the current model as a Hugging Face folder (written after each `apply`)

The current model is always base + folded delta + each applied, unfolded checkpoint in ledger order;
anything in checkpoints/ that the ledger does not reference (left by a crash) is deleted on open.
"""

from __future__ import annotations

import copy
import datetime as _dt
import errno
import fcntl
import os
import secrets
from pathlib import Path

import torch

from ..errors import UnlearnError
from .checkpoints import DENSE, add_deltas, dense_deltas, load_checkpoint, save_checkpoint
from .faults import kill_point
from .ledger import SCHEMA_VERSION, Entry, Ledger

LEDGER, LOCK, CHECKPOINTS, MODEL = "ledger.sqlite", "lock", "checkpoints", "model"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class StateLock:
    """An exclusive, non-blocking flock on DIR/lock; a second process is refused with a clear message."""

    def __init__(self, directory: Path):
        self.path = directory / LOCK
        self.handle = None

    def acquire(self) -> None:
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UnlearnError(f"the state directory {self.path.parent} is in use by {holder}; wait for it to finish "
                               "(one unlearn process at a time may change a state directory: `unlearn apply`, `teach` or "
                               "`serve`)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"unlearn pid {os.getpid()}\n")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class StateDir:
    """An opened (and locked) state directory."""

    def __init__(self, directory: str | Path, lock: bool = True):
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise UnlearnError(f"--state {self.directory} is a file; choose a directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.directory / CHECKPOINTS
        self.checkpoints.mkdir(exist_ok=True)
        self.lock = StateLock(self.directory)
        if lock:
            self.lock.acquire()
        try:
            self.ledger = Ledger(self.directory / LEDGER)
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.ledger.close()
        self.lock.release()

    def __enter__(self) -> StateDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # identity ---------------------------------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        return self.ledger.meta()

    def initialised(self) -> bool:
        return "base_digest" in self.meta

    def initialise(self, base_model: str, digest: str, sequence: dict) -> None:
        """Record the base model and the technique on first use."""
        with self.ledger.transaction() as conn:
            self.ledger.set_meta(conn, schema=SCHEMA_VERSION, created=now_iso(), base_model=base_model,
                                 base_digest=digest, sequence=sequence, salt=secrets.token_hex(16), folded=None)
            self.ledger.log(conn, now_iso(), None, "created", f"base model {base_model}")

    def check_base(self, base_model: str, digest: str) -> None:
        meta = self.meta
        if meta["base_digest"] != digest:
            raise UnlearnError(f"the state directory {self.directory} was created from the base model "
                               f"{meta['base_model']!r}, and {base_model!r} is a different model (its weights differ); "
                               "use the state directory's own base model or a new --state directory")

    # checkpoints ------------------------------------------------------------------------------------------
    def live_entries(self) -> list[Entry]:
        """Applied requests whose checkpoint is still a file of its own (not folded), in ledger order."""
        return [e for e in self.ledger.entries("applied") if e.checkpoint and not e.folded]

    def referenced_files(self) -> set[str]:
        files = {e.checkpoint for e in self.live_entries()}
        folded = self.meta.get("folded")
        if folded:
            files.add(folded["file"])
        return files

    def remove_orphans(self) -> list[str]:
        """Delete checkpoint files the ledger does not reference (left by an interrupted run)."""
        keep = self.referenced_files()
        removed = []
        for path in self.checkpoints.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed

    def checkpoint_tensors(self, entry: Entry) -> dict[str, torch.Tensor]:
        return load_checkpoint(self.checkpoints / entry.checkpoint, entry.checkpoint_sha256)

    def write_checkpoint(self, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
        return save_checkpoint(self.checkpoints / name, tensors, metadata)

    def assemble(self, base, extra: dict[str, torch.Tensor] | None = None, without: str | None = None):
        """A copy of `base` plus the folded delta and every live checkpoint (except request `without`),
        then `extra` (a new request's checkpoint tensors) — always added in the same order."""
        model = copy.deepcopy(base)
        folded = self.meta.get("folded")
        if folded:
            add_deltas(model, dense_deltas(load_checkpoint(self.checkpoints / folded["file"], folded["sha256"])))
        for entry in self.live_entries():
            if entry.id != without:
                add_deltas(model, dense_deltas(self.checkpoint_tensors(entry)))
        if extra is not None:
            add_deltas(model, dense_deltas(extra))
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()

    def fold(self, keep: int) -> int:
        """Sum the oldest live checkpoints, all but the newest `keep`, into the folded delta. Returns how many."""
        live = self.live_entries()
        old = live[: max(0, len(live) - keep)]
        if not old:
            return 0
        meta = self.meta
        total: dict[str, torch.Tensor] = {}
        previous = meta.get("folded")
        sources = [load_checkpoint(self.checkpoints / previous["file"], previous["sha256"])] if previous else []
        sources += [self.checkpoint_tensors(e) for e in old]
        for tensors in sources:
            for name, delta in dense_deltas(tensors).items():
                total[name] = total[name] + delta if name in total else delta.clone()
        generation = (previous or {}).get("generation", 0) + 1
        name = f"folded-{generation}.safetensors"
        sha = self.write_checkpoint(name, {DENSE + k: v for k, v in total.items()},
                                    {"kind": "folded", "through": old[-1].id})
        kill_point("fold-after-write")
        with self.ledger.transaction() as conn:
            self.ledger.set_meta(conn, folded={"file": name, "sha256": sha, "generation": generation,
                                               "through_seq": old[-1].seq})
            for entry in old:
                self.ledger.update(conn, entry.id, folded=1)
            self.ledger.log(conn, now_iso(), None, "folded", ", ".join(e.id for e in old))
        kill_point("fold-after-ledger")
        self.remove_orphans()
        return len(old)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.checkpoints.iterdir() if p.is_file())
