"""One builder for the pass/fail lines of every report (the demo, `unlearn run`, the audit, the ledger's
verification): a measured value against a threshold, at most or at least.

    {"name", "value", "threshold", "at_most", "passed", "description", ...extra}

passed = value <= threshold (+1e-9) when at_most, value >= threshold (-1e-9) otherwise; the tolerance keeps a
value equal to its threshold from failing by rounding. A value of None (nothing was measured) fails unless
`missing_passes`.
"""

from __future__ import annotations

from typing import Any

TOLERANCE = 1e-9


def passes(value: float | None, threshold: float, at_most: bool, missing_passes: bool = False) -> bool:
    if value is None:
        return missing_passes
    return bool(value <= threshold + TOLERANCE) if at_most else bool(value >= threshold - TOLERANCE)


def check(name: str, value: float | None, threshold: float, at_most: bool, description: str = "",
          missing_passes: bool = False, **extra: Any) -> dict[str, Any]:
    """A check as a JSON-ready dict (see the module docstring); `extra` keys are kept (e.g. the ledger's
    `fails_to`)."""
    return {"name": name, "value": value, "threshold": threshold, "at_most": at_most,
            "passed": passes(value, threshold, at_most, missing_passes), "description": description, **extra}


def bound(c: dict[str, Any]) -> str:
    """'<= 0.100' / '>= 0.900' (a check without a direction, as older reports have: 'threshold 0.100')."""
    value = c.get("threshold")
    shown = f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"
    at_most = c.get("at_most")
    return f"threshold {shown}" if at_most is None else f"{'<=' if at_most else '>='} {shown}"


def failed_line(checks: list[dict[str, Any]]) -> str:
    """'name = value (> threshold); ...' for every failed check."""
    return "; ".join(f"{c['name']} = {c['value']:.3f} ({'>' if c['at_most'] else '<'} {c['threshold']:.3f})"
                     for c in checks if not c["passed"] and c["value"] is not None)
