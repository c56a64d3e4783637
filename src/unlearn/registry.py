"""A small name -> object registry that rejects duplicates and suggests names."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .data.bounded import shown
from .errors import ConfigError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return ' Did you mean X?' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """Maps names to objects of one kind (methods, metrics, attacks, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name`."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            try:
                obj.registered_name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return decorate

    def get(self, name: str) -> T:
        if name not in self._items:
            names = self.names()
            raise ConfigError(
                f"unknown {self.kind} '{name}'.{did_you_mean(name, names)} Valid {self.kind}s: {', '.join(names)}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]


def dataclass_defaults(cls: type) -> dict[str, Any]:
    """Field name -> default value of a dataclass (a default_factory is called)."""
    import dataclasses

    return {f.name: f.default_factory() if f.default is dataclasses.MISSING and f.default_factory
            is not dataclasses.MISSING else f.default for f in dataclasses.fields(cls)}


def build_registered(registry: Registry[type], spec: str | dict[str, Any]) -> Any:
    """An instance of a registered dataclass from a name or a mapping {'name': ..., field: value}:
    unknown names and misspelt or mistyped fields are errors that list what is valid."""
    import dataclasses

    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if not name:
        raise ConfigError(f"{registry.kind}: missing 'name' (see `unlearn ls {registry.kind}s`)")
    cls = registry.get(name)
    fields = dataclass_defaults(cls)
    for key, value in spec.items():
        if key not in fields:
            raise ConfigError(
                f"{registry.kind} '{name}' has no setting '{key}'.{did_you_mean(key, list(fields))} "
                f"Valid: {', '.join(f'{k}={v}' for k, v in fields.items())}"
            )
        default = fields[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            spec[key] = float(value)
        elif default is not None and default is not dataclasses.MISSING and not isinstance(value, type(default)):
            raise ConfigError(f"{registry.kind} '{name}': {key} must be {type(default).__name__}, got {shown(value)}")
    obj = cls(**spec)
    validate = getattr(obj, "validate", None)
    if validate:
        validate()
    return obj
