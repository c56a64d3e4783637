"""`EvalResult`: one model's evaluation on a benchmark, and its JSON form (stable within a schema version).

    {
      "schema": "unlearn.tofu_eval/1",        # benchmark and version of the layout
      "benchmark": "tofu",
      "summary": {"forget_quality": 0.17, ...},   # headline numbers under the names researchers use
      "n_nan": {"forget_truth_ratio": 1},         # only the metrics that had NaN per-example values
      "metrics": {"forget_truth_ratio": {"value": ..., "per_example": [...], "n_nan": 0,
                                         "metric": "truth_ratio", "higher_is_better": true, "version": "1"}},
      ...                                         # the benchmark's own details (TOFU: forget_fingerprint,
    }                                             #  base_model, sizes, forget_truth_ratios, tokens_scored)

Every summary key has a `metrics` entry except values derived after the evaluation (e.g. the retain
model's forget quality against itself). A file that lacks a field is refused with the field's name.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import atomic_write_json
from .base import METRICS, MetricResult

METRIC_ENTRY_FIELDS = ("value", "per_example", "n_nan", "metric", "higher_is_better", "version")
_CORE = ("schema", "benchmark", "summary", "n_nan", "metrics")


def metric_entry(result: MetricResult, metric: str, higher_is_better: bool | None = None) -> dict[str, Any]:
    """One metric of an evaluation: value, per-example values, NaN count, and the registered metric it
    comes from with its version and its direction in this use (the registered one unless given)."""
    info = METRICS.get(metric)
    direction = info.higher_is_better if higher_is_better is None else higher_is_better
    return {"value": result.value, "per_example": result.per_example, "n_nan": result.n_nan, "metric": metric,
            "higher_is_better": direction, "version": info.version}


@dataclass
class EvalResult:
    schema: str
    benchmark: str
    summary: dict[str, float]
    metrics: dict[str, dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_metrics(cls, schema: str, benchmark: str, results: dict[str, MetricResult], metric_of: dict[str, str],
                     details: dict[str, Any] | None = None, directions: dict[str, bool] | None = None) -> EvalResult:
        """From computed metrics; `metric_of[key]` names the registered metric behind each summary key and
        `directions[key]` its direction where this use differs from the registered one (a forget split's
        answer probability: lower is better)."""
        missing = [key for key in results if key not in metric_of]
        if missing:
            raise ValueError(f"no registered metric named for {', '.join(missing)}")
        unknown = set(directions or {}) - set(results)
        if unknown:
            raise ValueError(f"directions given for keys not computed: {', '.join(sorted(unknown))}")
        return cls(schema, benchmark, {k: r.value for k, r in results.items()},
                   {k: metric_entry(r, metric_of[k], (directions or {}).get(k)) for k, r in results.items()},
                   dict(details or {}))

    @property
    def n_nan(self) -> dict[str, int]:
        return {k: e["n_nan"] for k, e in self.metrics.items() if e["n_nan"]}

    def per_example(self, key: str) -> list[float]:
        if key not in self.metrics:
            raise ConfigError(f"the {self.benchmark} evaluation has no metric '{key}'; it has: "
                              f"{', '.join(sorted(self.metrics))}")
        return self.metrics[key]["per_example"]

    def higher_is_better(self, key: str) -> bool:
        return bool(self.metrics[key]["higher_is_better"])

    def to_json(self) -> dict[str, Any]:
        clash = set(self.details) & set(_CORE)
        if clash:
            raise ValueError(f"details may not use the reserved keys {sorted(clash)}")
        return {"schema": self.schema, "benchmark": self.benchmark, "summary": dict(self.summary),
                "n_nan": self.n_nan, "metrics": self.metrics, **self.details}

    @classmethod
    def from_json(cls, data: Any, source: str = "the evaluation") -> EvalResult:
        """Read and check the JSON form; a missing or mistyped field is named in the error."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source} is not an evaluation (a JSON object is expected)")
        for key, kind in (("schema", str), ("benchmark", str), ("summary", dict), ("metrics", dict)):
            if not isinstance(data.get(key), kind):
                raise ConfigError(f"{source} has no valid '{key}' field: not an evaluation file of this version")
        for key, value in data["summary"].items():
            if value is not None and not isinstance(value, int | float):
                raise ConfigError(f"{source}: summary value '{key}' is {value!r}, not a number")
        for key, entry in data["metrics"].items():
            absent = [f for f in METRIC_ENTRY_FIELDS if not isinstance(entry, dict) or f not in entry]
            if absent:
                raise ConfigError(f"{source}: metric '{key}' lacks {', '.join(absent)}")
        details = {k: v for k, v in data.items() if k not in _CORE}
        summary = {k: (math.nan if v is None else float(v)) for k, v in data["summary"].items()}
        return cls(data["schema"], data["benchmark"], summary, data["metrics"], details)

    def save(self, path: Path) -> None:
        atomic_write_json(Path(path), self.to_json())

    @classmethod
    def load(cls, path: Path) -> EvalResult:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"evaluation file {path} not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc.msg}); re-run the evaluation") from None
        return cls.from_json(data, str(path))
