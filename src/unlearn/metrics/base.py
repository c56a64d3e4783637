"""Metric registry: each metric is a function with metadata, returning an aggregate and per-example values."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..registry import Registry


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric. `inputs`: what a caller must give it (its parameters without defaults, read from
    the function). `higher_is_better`: the direction on data the model should know or keep; a use on data to
    forget reverses it and says so (`EvalResult.from_metrics(..., directions=...)`)."""

    name: str
    fn: Callable
    higher_is_better: bool
    version: str
    description: str
    inputs: tuple[str, ...] = ()


@dataclass
class MetricResult:
    """`value` aggregates `per_example`; NaN examples are counted in `n_nan`, never silently averaged."""

    value: float
    per_example: list[float] = field(default_factory=list)
    n_nan: int = 0


METRICS: Registry[MetricInfo] = Registry("metric")


def metric(name: str, higher_is_better: bool, version: str = "1", description: str = ""):
    """Decorator registering a metric function under `name`."""

    def decorate(fn: Callable) -> Callable:
        summary = description or (fn.__doc__ or "").strip().splitlines()[0]
        METRICS.register(name)(MetricInfo(name, fn, higher_is_better, version, summary, required_inputs(fn)))
        return fn

    return decorate


def required_inputs(fn: Callable) -> tuple[str, ...]:
    """The parameters of `fn` a caller must give (those without a default)."""
    parameters = inspect.signature(fn).parameters.values()
    return tuple(p.name for p in parameters if p.default is inspect.Parameter.empty
                 and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD))


def mean_result(values: Sequence[float]) -> MetricResult:
    """Mean of the finite values; NaNs are counted, and the mean is NaN if any is present."""
    values = [float(v) for v in values]
    n_nan = sum(1 for v in values if math.isnan(v))
    if not values:
        return MetricResult(float("nan"), [], 0)
    value = float("nan") if n_nan else sum(values) / len(values)
    return MetricResult(value, values, n_nan)
