"""An audit's result as typed objects, and its JSON form (schema unlearn.audit/1).

    AuditReport            what `unlearn.auditing.audit` returns; `.to_json()` is report.json, `read_audit(path)`
                           reads one back (a missing field is named)
      .plain               {role: {group: {"n", "accuracy", "per_probe", "examples"}}}  greedy answers, asked plainly
      .likelihood          {role: likelihood test}                                     (metrics/knowledge.py)
      .attacks             {name: AttackResult}                                        in the order they ran
      .headline            AuditHeadline: the worst attack and recovery, failed and skipped attacks
      .verdict, .checks    'pass' / 'fail' / 'incomplete', and the check lines behind it (metrics/checks.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import (
    atomic_directory,
    atomic_write_json,
    json_fields,
    json_mapping,
    read_report_json,
    schema_fields,
)
from .metrics.checks import bound
from .metrics.knowledge import CHECK_NAMES as LIKELIHOOD_CHECKS

SCHEMA = "unlearn.audit/1"
ATTACK_STATUSES = ("ok", "failed", "skipped")
MEASURED_FIELDS = ("recovery", "knowledge", "variants", "recovered_probes", "utility", "retain_utility", "curve",
                   "retain_curve", "likelihood", "retain_likelihood", "notes", "examples")


@dataclass
class AttackResult:
    """One attack's part of an audit. `status` 'ok': `recovery` (the worst over its variants; None when unlearning
    removed nothing measurable), the attacked `knowledge` and the measures per variant; 'failed': the `error`;
    'skipped' (the quick audit stopped before it, or it asked nothing of this request): the `reason`."""

    status: str
    kind: str | None
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None
    recovery: float | None = None
    knowledge: float | None = None
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> n, knowledge, recovery, floors
    recovered_probes: list[int] = field(default_factory=list)  # forget probes answered only under the attack
    utility: dict[str, float] = field(default_factory=dict)
    retain_utility: dict[str, float] = field(default_factory=dict)
    curve: dict[str, float] | None = None
    retain_curve: dict[str, float] | None = None
    likelihood: dict[str, dict] = field(default_factory=dict)  # variant -> likelihood test after a model attack
    retain_likelihood: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in ATTACK_STATUSES:
            raise ConfigError(f"attack status '{self.status}' is unknown; use one of {', '.join(ATTACK_STATUSES)}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        head = {"kind": self.kind, "seconds": self.seconds, "settings": self.settings, "status": self.status}
        if self.status == "failed":
            return head | {"error": self.error}
        if self.status == "skipped":
            return head | {"reason": self.reason}
        return head | {name: getattr(self, name) for name in MEASURED_FIELDS}

    @classmethod
    def from_json(cls, data: Any, source: str) -> AttackResult:
        found = json_fields(data, ("status", "kind", "seconds"), source, optional=("settings",))
        if found["status"] not in ATTACK_STATUSES:
            raise ConfigError(f"{source}: status '{found['status']}' is not one of {', '.join(ATTACK_STATUSES)}")
        needed = {"ok": ("recovery", "knowledge", "variants"), "failed": ("error",), "skipped": ("reason",)}
        extra = json_fields(data, needed[found["status"]], source,
                            optional=MEASURED_FIELDS if found["status"] == "ok" else ())
        return cls(**found, **extra)


@dataclass
class AuditHeadline:
    """The worst case over the attacks that measured a recovery, and the attacks that failed or were skipped."""

    worst_attack: str | None
    worst_recovery: float | None
    failed_attacks: list[str] = field(default_factory=list)
    skipped_attacks: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, attacks: dict[str, AttackResult]) -> AuditHeadline:
        measured = {n: a.recovery for n, a in attacks.items() if a.ok and a.recovery is not None}
        worst = max(measured, key=lambda n: measured[n]) if measured else None
        return cls(worst, measured[worst] if worst else None,
                   [n for n, a in attacks.items() if a.status == "failed"],
                   [n for n, a in attacks.items() if a.status == "skipped"])

    def to_json(self) -> dict[str, Any]:
        return {"worst_attack": self.worst_attack, "worst_recovery": self.worst_recovery,
                "failed_attacks": list(self.failed_attacks), "skipped_attacks": list(self.skipped_attacks)}

    @classmethod
    def from_json(cls, data: Any, source: str) -> AuditHeadline:
        return cls(**json_fields(data, ("worst_attack", "worst_recovery"), source,
                                 optional=("failed_attacks", "skipped_attacks")))


REQUIRED = ("created", "title", "request", "roles", "config", "plain", "attacks", "headline", "verdict", "checks")
OPTIONAL = ("models", "guarded", "likelihood", "forget_probes", "timings", "reused_reference_results")


@dataclass
class AuditReport:
    """Everything an audit measured (see the module docstring); `passed` when the verdict is 'pass'."""

    created: str
    title: str
    request: dict[str, Any]
    roles: list[str]
    config: dict[str, Any]
    plain: dict[str, dict[str, dict[str, Any]]]
    attacks: dict[str, AttackResult]
    headline: AuditHeadline
    verdict: str
    checks: list[dict[str, Any]]
    models: dict[str, str] = field(default_factory=dict)
    guarded: bool = False
    likelihood: dict[str, dict[str, Any]] = field(default_factory=dict)
    forget_probes: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    reused_reference_results: list[str] = field(default_factory=list)  # computed by an earlier audit's references

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def accuracy(self, role: str, group: str) -> float:
        """Share of `group`'s probes that `role`'s model answers, asked plainly."""
        return self.plain[role][group]["accuracy"]

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "kind": "audit", "created": self.created, "title": self.title,
                "request": self.request, "models": self.models, "roles": list(self.roles), "guarded": self.guarded,
                "config": self.config, "plain": self.plain, "likelihood": self.likelihood,
                "forget_probes": self.forget_probes,
                "attacks": {name: a.to_json() for name, a in self.attacks.items()},
                "headline": self.headline.to_json(), "timings": self.timings,
                "reused_reference_results": list(self.reused_reference_results),
                "verdict": self.verdict, "checks": self.checks}

    @classmethod
    def from_json(cls, data: Any, source: str = "the audit report") -> AuditReport:
        found = schema_fields(data, SCHEMA, REQUIRED, source, OPTIONAL, "an audit report")
        found["attacks"] = json_mapping(found, "attacks", source,
                                        lambda a, name: AttackResult.from_json(a, f"{source}, attack '{name}'"))
        found["headline"] = AuditHeadline.from_json(found["headline"], f"{source}, headline")
        return cls(**found)


def read_audit(path: str | Path) -> AuditReport:
    """An audit's report.json (or the folder holding it) as an AuditReport."""
    path, data = read_report_json(path, "an audit's report.json or its folder")
    return AuditReport.from_json(data, str(path))


def write_audit(report: AuditReport, out: str | Path) -> tuple[Path, Path]:
    """report.json and report.html into `out`, written atomically together."""
    from .io import atomic_write_text
    from .report.audit_html import render_audit_html

    out = Path(out)
    data = report.to_json()
    with atomic_directory(out, overwrite=True) as tmp:
        atomic_write_json(tmp / "report.json", data)
        atomic_write_text(tmp / "report.html", render_audit_html(data))
    return out / "report.json", out / "report.html"


def audit_summary_text(report: AuditReport, paths: dict[str, str] | None = None) -> str:
    """The one-screen summary printed at the end of `unlearn audit`."""
    from .report.summary import fmt

    lines = [report.title, f"verdict: {report.verdict.upper()}"]
    head = report.headline
    lines.append(f"worst-case recovery: {fmt(head.worst_recovery)}"
                 + (f" ({head.worst_attack})" if head.worst_attack else ""))
    roles = report.roles
    lines.append("plain accuracy   " + "  ".join(f"{r:>10}" for r in roles))
    for group in report.plain[roles[0]]:
        lines.append(f"  {group:<14} " + "  ".join(f"{fmt(report.accuracy(r, group)):>10}" for r in roles))
    tests = report.likelihood
    if tests:
        chance = next(iter(tests.values()))["chance_top1"]
        lines.append(f"likelihood top-1 of the true values (chance {fmt(chance)})")
        lines.append(f"  {'forget':<14} " + "  ".join(
            f"{fmt(tests[r]['top1']) if r in tests else 'n/a':>10}" for r in roles))
        lines.append(f"  {'ranked last':<14} " + "  ".join(
            f"{fmt(tests[r].get('last')) if r in tests else 'n/a':>10}" for r in roles))
    lines.append(f"{'attack':<14} {'recovery':>9} {'knowledge':>10} {'seconds':>8}")
    for name, a in report.attacks.items():
        if a.status == "failed":
            lines.append(f"{name:<14} FAILED: {a.error}")
        elif a.status == "skipped":
            lines.append(f"{name:<14} skipped ({a.reason})")
        else:
            lines.append(f"{name:<14} {fmt(a.recovery):>9} {fmt(a.knowledge):>10} {a.seconds:>8.1f}"
                         + ("  (no recovery measured: see its notes)" if a.recovery is None else ""))
    if report.verdict == "incomplete":
        lines.append("incomplete: a pass needs every attack to run and measure a recovery (see the lines above)")
    for line in report.checks:
        if line["name"].startswith(LIKELIHOOD_CHECKS):
            lines.append(f"[{'PASS' if line['passed'] else 'FAIL'}] {line['name']}: {fmt(line['value'])} "
                         f"({bound(line)})")
    for path_name, path in (paths or {}).items():
        lines.append(f"{path_name}: {path}")
    return "\n".join(lines)
