"""The sweep runner every benchmark shares: methods x grid points, one result file per run, resumable.

    unlearn bench tofu sweep --methods npo,grad_diff --grid train.lr=1e-5,5e-5 --out runs/x
    unlearn bench muse sweep --methods npo --grid method.beta=0.1,0.5 --out runs/y

A run's file (`out/runs/<method>-<hash of its overrides>[-<setting key>].json`) is written as soon as the run
ends and reused by the next sweep into the same folder, so an interrupted sweep resumes; a run that fails
(diverges, refuses the data) is recorded as failed and the others go on.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import (
    RunConfig,
    TrainableConfig,
    TrainConfig,
    multiplier,
    parse_override,
    with_overrides,
)
from ..errors import ConfigError, UnlearnError
from ..io import atomic_write_json, sha256_json
from ..methods import benchmark_settings, make_method, with_base_model
from ..models.loading import DEFAULT_MODEL


def bench_run_config(benchmark: str, method: str, train: TrainConfig, overrides: list[str] | None = None,
                     fallback: str | None = None, base_model: str = DEFAULT_MODEL) -> RunConfig:
    """`method` on a benchmark: the last 10 layers trainable with the benchmark's `train` recipe, then the method's
    `benchmark_settings[benchmark]` (else those of `fallback`), then the user's overrides (`key=xN` scales a
    method's own value). `base_model` replaces a setting `BASE_MODEL` (the benchmark's base model). A misspelt
    method or setting fails here, before anything slow."""
    base = RunConfig(method={"name": method}, trainable=TrainableConfig(mode="layers", layers="-10:"), train=train)
    settings = benchmark_settings(benchmark, method) or (benchmark_settings(fallback, method) if fallback else {})
    settings = with_base_model(settings, base_model)
    items = [f"{k}={v}" for k, v in settings.items()] + list(overrides or [])
    config = with_overrides(RunConfig, base, items)
    make_method(config.method)
    return config


def parse_grid(items: list[str]) -> list[list[str]]:
    """['train.lr=1e-5,5e-5', 'train.epochs=5,10'] -> every combination as override lists. Keys joined by '+'
    move together: 'method.seed+train.seed=0,1' -> [method.seed=0, train.seed=0], [method.seed=1, train.seed=1]."""
    axes = []
    for item in items:
        key, _, values = item.partition("=")
        keys = [k.strip() for k in key.split("+")]
        points = [v.strip() for v in values.split(",") if v.strip()]
        if not all(keys) or not points:
            raise ConfigError(f"grid entry '{item}' must look like key=value1,value2 (e.g. train.lr=1e-5,5e-5, "
                              "or method.seed+train.seed=0,1 for keys that move together)")
        axes.append([[f"{k}={v}" for k in keys] for v in points])
        for group in axes[-1]:
            for override in group:
                parse_override(override)
    return [[o for group in point for o in group] for point in itertools.product(*axes)] if axes else [[]]


def run_label(method: str, overrides: list[str]) -> str:
    """'npo lr=1e-05 beta=0.5': the method and the last part of each overridden key, a repeated part once
    (method.seed=1 train.seed=1 -> 'seed=1')."""
    parts = [f" {o.split('=', 1)[0].rsplit('.', 1)[-1]}={o.split('=', 1)[1]}" for o in overrides]
    return method + "".join(dict.fromkeys(parts))


def check_grid(methods: list[str], points: list[list[str]], check: Callable[[str, list[str]], Any]) -> None:
    """`check(method, overrides)` for every run of the sweep: a misspelt name or setting fails before hours of
    work."""
    for method, overrides in itertools.product(methods, points):
        check(method, overrides)


def effective_overrides(overrides: list[str]) -> list[str]:
    """The overrides that change something: 'train.lr=x1' (one times the method's own value) is dropped, so a
    grid's x1 point is the same run as the method at its defaults and reuses that run's file."""
    return [o for o in overrides if multiplier(o.partition("=")[2]) != 1.0]


def run_file(out: Path, method: str, overrides: list[str], key: str = "") -> Path:
    digest = sha256_json(effective_overrides(overrides))[:8]
    return out / "runs" / f"{method}-{digest}{'-' + key if key else ''}.json"


def sweep_runs(methods: list[str], points: list[list[str]], out: Path,
               run_one: Callable[[str, list[str]], dict[str, Any]],
               failed: Callable[[str, list[str], str], dict[str, Any]],
               key: str = "", echo: Callable[[str], Any] = print, tag: str = "sweep") -> list[dict[str, Any]]:
    """Every (method, point) in order: its run file reused when present, else `run_one(method, overrides)`
    written there (without its per-example "evaluation"); an `UnlearnError` becomes `failed(method, overrides,
    message)`. Each returned run carries its table label."""
    runs = []
    for method, overrides in itertools.product(methods, points):
        path = run_file(out, method, overrides, key)
        label = run_label(method, overrides)
        if path.is_file():
            run = json_file(path)
        else:
            echo(f"[{tag}] {label}")
            try:
                run = run_one(method, overrides)
            except UnlearnError as exc:  # diverged or refused: report it, keep the other runs
                run = failed(method, overrides, str(exc))
            run.pop("evaluation", None)  # per-example values stay out of the sweep files
            atomic_write_json(path, run)
        runs.append(run | {"label": label})
    return runs


def json_file(path: Path) -> dict[str, Any]:
    """A run file, or a one-line error naming it."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not a readable run file ({exc}); delete it to run that point again") from exc
