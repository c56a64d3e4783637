"""Atomic file and directory writes: a crash never leaves a half-written output."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and an atomic rename; the directory is synced after the
    rename, so a power loss right after the call cannot bring back the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """fsync a directory (its entries: a rename in it), where the platform allows opening one."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows, which cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextmanager
def atomic_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path` in one rename.

    On any exception (Ctrl-C included) the temporary directory is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(f"{path} already exists")
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-serialisable object, independent of key order."""
    return sha256_text(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str))


def unlearn_home() -> Path:
    """Cache directory: $UNLEARN_HOME, else ~/.cache/unlearn."""
    env = os.environ.get("UNLEARN_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "unlearn"


def json_fields(data: Any, names: tuple[str, ...], source: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The `names` (all required) and `optional` fields of `data`, a JSON object read back from a file; an error
    names what is missing (`source` says where the object came from)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a JSON object, not {type(data).__name__}")
    missing = [n for n in names if n not in data]
    if missing:
        raise ConfigError(f"{source} lacks the field(s) {', '.join(missing)}")
    return {n: data[n] for n in (*names, *optional) if n in data}


def schema_fields(data: Any, schema: str, names: tuple[str, ...], source: str, optional: tuple[str, ...],
                  what: str) -> dict[str, Any]:
    """`json_fields` of a report that must have `schema` (a report of another kind is refused: it is not `what`)."""
    found = json_fields(data, ("schema", *names), source, optional)
    if found.pop("schema") != schema:
        raise ConfigError(f"{source} has schema {data['schema']!r}, not {schema!r}: it is not {what}")
    return found


def json_mapping(found: dict[str, Any], key: str, source: str, parse) -> dict[str, Any]:
    """`found[key]`, a JSON object of named parts, each read with `parse(value, name)`."""
    if not isinstance(found[key], dict):
        raise ConfigError(f"{source}: '{key}' must map names to results")
    return {name: parse(value, name) for name, value in found[key].items()}


def read_report_json(path: str | Path, what: str) -> tuple[Path, Any]:
    """The JSON of a report file, or of `report.json` in a folder; `what` names it in the error for a missing or
    unreadable file."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        return path, json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: give {what}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc})") from None
