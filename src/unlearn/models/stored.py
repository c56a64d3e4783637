"""A reference model kept in a local directory, loaded only when something needs its weights.

An audit compares the audited model with the model before unlearning and a never-taught one; what it computes
on those is cached under their weights' digest, so a warm audit needs neither model. `StoredModel` gives that
digest from the directory's files (memoised per file size and modification time) and loads the model on first use.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..io import atomic_write_json, file_sha256, unlearn_home

WEIGHT_FILES = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "config.json")
DIGESTS_FILE = "digests.json"


def _weight_files(directory: Path) -> list[Path]:
    return sorted({f for pattern in WEIGHT_FILES for f in directory.glob(pattern) if f.is_file()})


def directory_digest(directory: str | Path) -> str:
    """SHA-256 over the names and bytes of a model directory's weight and config files. Each file's hash is
    remembered in $UNLEARN_HOME/digests.json under its path, size and modification time, so an unchanged
    directory is not read again."""
    directory = Path(directory).resolve()
    files = _weight_files(directory)
    if not files:
        raise FileNotFoundError(f"{directory} holds no model weights ({', '.join(WEIGHT_FILES)})")
    memo_path = unlearn_home() / DIGESTS_FILE
    try:
        memo = json.loads(memo_path.read_text()) if memo_path.is_file() else {}
    except (OSError, ValueError):  # a damaged memo is rebuilt
        memo = {}
    changed = False
    overall = hashlib.sha256()
    for f in files:
        stat = f.stat()
        key, stamp = str(f), [stat.st_size, stat.st_mtime_ns]
        entry = memo.get(key)
        if not (isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str)):
            entry = {"stamp": stamp, "sha256": file_sha256(f)}
            memo[key] = entry
            changed = True
        overall.update(f"{f.name}|{entry['sha256']}|".encode())
    if changed:
        atomic_write_json(memo_path, memo)
    return overall.hexdigest()


class StoredModel:
    """A model directory, loaded (`load`, once) only when its weights are needed; `digest` without loading."""

    def __init__(self, path: str | Path, dtype: str = "float32"):
        self.path = Path(path)
        self.dtype = dtype
        self._model = None

    def load(self):
        if self._model is None:
            from .loading import load_model

            self._model = load_model(str(self.path), self.dtype)[0]
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def digest(self) -> str:
        return directory_digest(self.path)

    def __repr__(self) -> str:
        return f"StoredModel({str(self.path)!r})"
