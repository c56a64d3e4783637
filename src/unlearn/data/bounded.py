"""Reading files that users hand in, with limits: size, YAML alias expansion, nesting depth.

A request or configuration file is refused in one line, before anything large is built, when
- the file is larger than the request size limit (`unlearn --max-request-mb N`, $UNLEARN_MAX_REQUEST_MB,
  default 8 MB);
- its YAML, with every alias expanded, would be larger than that limit (a "billion laughs" document of a few
  hundred bytes expands to gigabytes), or an alias refers to a node that contains it;
- it nests deeper than MAX_DEPTH.
Values quoted in error messages go through `shown`, which never prints more than a few dozen characters.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError

DEFAULT_MAX_REQUEST_MB = 8.0
MAX_REQUEST_ENV = "UNLEARN_MAX_REQUEST_MB"
SIZE_FLAG = "--max-request-mb"
MAX_DEPTH = 100  # far beyond any request (4 levels) or configuration (3 levels)
SHOWN_CHARS = 60

_limit_mb: float | None = None  # set by the CLI flag; None: the environment or the default


def set_max_request_mb(value: float | None) -> None:
    """The request size limit for this process (the CLI's --max-request-mb); None: back to the default."""
    if value is not None and not value > 0:
        raise ConfigError(f"{SIZE_FLAG} must be a positive number of megabytes, got {value}")
    global _limit_mb
    _limit_mb = value


def max_request_bytes() -> int:
    if _limit_mb is not None:
        return int(_limit_mb * 1_000_000)
    raw = os.environ.get(MAX_REQUEST_ENV)
    if raw is None:
        return int(DEFAULT_MAX_REQUEST_MB * 1_000_000)
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"${MAX_REQUEST_ENV} must be a positive number of megabytes, got {shown(raw)}")
    return int(value * 1_000_000)


def _limit_text(limit: int) -> str:
    return f"{limit / 1_000_000:g} MB (raise it with `unlearn {SIZE_FLAG} N ...` or ${MAX_REQUEST_ENV})"


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict = 2, 4, 4, 4
_repr.maxstring, _repr.maxother = SHOWN_CHARS, SHOWN_CHARS


def shown(value: Any) -> str:
    """A bounded repr of `value` for an error message: nested and long values are elided with '...'."""
    text = _repr.repr(value)
    return text if len(text) <= 2 * SHOWN_CHARS else text[: 2 * SHOWN_CHARS - 3] + "..."


def read_limited(path: str | Path, what: str = "request file") -> str:
    """The text of `path`, refused when larger than the request size limit or not UTF-8."""
    path = Path(path)
    limit = max_request_bytes()
    size = path.stat().st_size
    if size > limit:
        raise ConfigError(f"{path}: the {what} has {size:,} bytes, over the limit of {_limit_text(limit)}")
    with path.open("rb") as handle:
        raw = handle.read(limit + 1)  # a file that grew since stat is still read no further than the limit
    if len(raw) > limit:
        raise ConfigError(f"{path}: the {what} is larger than the limit of {_limit_text(limit)}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from None


def _expanded_size(node, limit: int, source: str) -> int:
    """Characters + nodes of the YAML node graph with every alias expanded; refused past `limit`, on an alias
    cycle, or past MAX_DEPTH. Memoised per node, so a shared subtree is measured once (and counted each time)."""
    import yaml

    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(n, depth: int) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(f"{source}: a YAML alias refers to a node that contains it")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(n, yaml.ScalarNode):
            total = 1 + len(n.value)
        else:
            open_nodes.add(key)
            children = n.value if isinstance(n, yaml.SequenceNode) else [c for pair in n.value for c in pair]
            total = 1
            for child in children:
                total += size(child, depth + 1)
                if total > limit:
                    raise ConfigError(f"{source}: its YAML aliases expand to more than the limit of "
                                      f"{_limit_text(limit)}; write the data out instead of repeating it by alias")
            open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(node, 0)


def load_yaml_text(text: str, source: str) -> Any:
    """yaml.safe_load with the expansion and depth limits (see the module docstring)."""
    import yaml

    loader = None
    try:
        loader = yaml.SafeLoader(text)  # already reads the stream: an unacceptable character fails here
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, max_request_bytes(), source)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # the latter: a bad date, a huge int
        raise ConfigError(f"{source}: not valid YAML ({_first_line(exc)})") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_json_text(text: str, source: str) -> Any:
    """json.loads, with a one-line refusal of documents nested too deeply to read."""
    import json

    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"{source}: not valid JSON ({_first_line(exc)})") from None


def _first_line(exc: Exception) -> str:
    lines = str(exc).splitlines()
    return shown(lines[0] if lines else type(exc).__name__).strip("'\"")
