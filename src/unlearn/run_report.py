"""A run's or the demo's result as a typed object, and its JSON form (schema unlearn.report/1, report.json).

    RunReport                 what `unlearn.unlearn`, `runner.run_request` and `benchmarks.demo.run_demo` return
      .evaluations            {role: RequestEvaluation}   original / unlearned (a run); + deployed, retain (the demo)
      .training               TrainingSummary             steps, seconds, early stop, loss history
      .headline               a run: {group: {"before", "after"}} accuracy
      .checks, .verdict       the demo: its check lines (metrics/checks.py) and 'pass' / 'fail'
      .unlearned_model        the unlearned model itself (in memory only; report.json does not hold it)

`.to_json()` is report.json; `read_report(path)` reads one back, naming any missing field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import json_fields, json_mapping, read_report_json, schema_fields
from .metrics.probes import RequestEvaluation

SCHEMA = "unlearn.report/1"
KINDS = ("run", "demo")


@dataclass
class TrainingSummary:
    """How the unlearning trained: optimizer steps, seconds, whether early stopping ended it, the logged losses and
    (a run) how many processes trained."""

    steps: int
    seconds: float
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    processes: int | None = None

    @classmethod
    def of(cls, train, processes: bool = True) -> TrainingSummary:
        """From a training loop's result (`train.loop.TrainResult`)."""
        return cls(train.steps, train.seconds, train.stopped_early, train.history,
                   train.processes if processes else None)

    def to_json(self) -> dict[str, Any]:
        out = {"steps": self.steps, "seconds": self.seconds, "stopped_early": self.stopped_early}
        if self.processes is not None:
            out["processes"] = self.processes
        return out | {"history": self.history}

    @classmethod
    def from_json(cls, data: Any, source: str) -> TrainingSummary:
        return cls(**json_fields(data, ("steps", "seconds", "stopped_early"), source, optional=("history", "processes")))


REQUIRED = ("kind", "created", "title", "request", "method", "model", "config", "roles", "evaluations", "training",
            "timings")
OPTIONAL = ("headline", "checks", "verdict", "demo", "notes", "output_model")


@dataclass
class RunReport:
    """Everything a run (or the demo) measured; see the module docstring."""

    kind: str
    created: str
    title: str
    request: dict[str, Any]
    method: dict[str, Any]
    model: dict[str, Any]  # name and weight fingerprint of the unlearned model
    config: dict[str, Any]
    roles: list[str]
    evaluations: dict[str, RequestEvaluation]
    training: TrainingSummary
    timings: dict[str, float]
    headline: dict[str, dict[str, float]] | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    verdict: str | None = None
    demo: dict[str, Any] | None = None  # the demo's specification
    notes: list[str] = field(default_factory=list)
    output_model: str | None = None  # where the unlearned model was saved
    unlearned_model: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"report kind '{self.kind}' is unknown; use one of {', '.join(KINDS)}")

    @property
    def passed(self) -> bool:
        """Every check passed (a run without checks passes nothing: it has no verdict)."""
        return self.verdict == "pass"

    def accuracy(self, role: str, group: str) -> float:
        return self.evaluations[role].accuracy(group)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA, "kind": self.kind, "created": self.created, "title": self.title,
                               "request": self.request, "method": self.method, "model": self.model,
                               "config": self.config}
        if self.demo is not None:
            out["demo"] = self.demo
        out |= {"roles": list(self.roles), "evaluations": {r: e.to_json() for r, e in self.evaluations.items()}}
        if self.verdict is not None:
            out |= {"checks": self.checks, "verdict": self.verdict}
        out |= {"training": self.training.to_json(), "timings": self.timings}
        if self.headline is not None:
            out["headline"] = self.headline
        if self.notes:
            out["notes"] = list(self.notes)
        if self.output_model is not None:
            out["output_model"] = self.output_model
        return out

    @classmethod
    def from_json(cls, data: Any, source: str = "the report") -> RunReport:
        found = schema_fields(data, SCHEMA, REQUIRED, source, OPTIONAL, "a run's report")
        found["evaluations"] = json_mapping(
            found, "evaluations", source,
            lambda e, role: RequestEvaluation.from_json(e, f"{source}, evaluation of the {role} model"))
        found["training"] = TrainingSummary.from_json(found["training"], f"{source}, training")
        return cls(**found)


def read_report(path: str | Path) -> RunReport:
    """A run's (or the demo's) report.json, or the output folder holding it, as a RunReport."""
    path, data = read_report_json(path, "a run's report.json or its output folder")
    return RunReport.from_json(data, str(path))
