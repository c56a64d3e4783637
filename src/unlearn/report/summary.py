"""The one-screen text summary printed at the end of a run or the demo."""

from __future__ import annotations

import math

from ..metrics.checks import bound

GROUP_ORDER = ("forget", "forget_paraphrase", "neighbour", "general")


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def ordered_groups(evaluations: dict) -> list[str]:
    names = {g for e in evaluations.values() for g in e.get("groups", {})}
    return [g for g in GROUP_ORDER if g in names] + sorted(names - set(GROUP_ORDER))


def accuracy_table(report: dict) -> list[str]:
    roles = [r for r in report.get("roles", []) if r in report.get("evaluations", {})]
    evaluations = report.get("evaluations", {})
    width = max([len("fluency passed"), *(len(g) for g in ordered_groups(evaluations))]) + 2
    lines = ["probe accuracy".ljust(width) + "".join(r.rjust(11) for r in roles)]
    for group in ordered_groups(evaluations):
        cells = [fmt(evaluations[r].get("groups", {}).get(group, {}).get("accuracy")) for r in roles]
        lines.append(group.ljust(width) + "".join(c.rjust(11) for c in cells))
    cells = ["yes" if evaluations[r].get("fluency", {}).get("passed") else "NO" for r in roles]
    lines.append("fluency passed".ljust(width) + "".join(c.rjust(11) for c in cells))
    likelihood = [evaluations[r].get("likelihood") or {} for r in roles]
    if any(lk.get("top1") is not None for lk in likelihood):
        chance = next(lk["chance_top1"] for lk in likelihood if lk.get("top1") is not None)
        lines.append(f"likelihood top-1 (chance {chance:.3f}):")
        lines.append("  forget facts".ljust(width) + "".join(fmt(lk.get("top1")).rjust(11) for lk in likelihood))
        lines.append("  mean rank".ljust(width) + "".join(fmt(lk.get("mean_rank")).rjust(11) for lk in likelihood))
        lines.append("  ranked last".ljust(width) + "".join(fmt(lk.get("last")).rjust(11) for lk in likelihood))
    return lines


def example_lines(report: dict, group: str = "forget", limit: int = 3) -> list[str]:
    evaluations = report.get("evaluations", {})
    roles = [r for r in report.get("roles", []) if group in evaluations.get(r, {}).get("groups", {})]
    if not roles:
        return []
    lines = [f"example answers ({group} probes):"]
    first = evaluations[roles[0]]["groups"][group]["examples"]
    for i, ex in enumerate(first[:limit]):
        lines.append(f"  Q: {ex['question']}   (gold: {ex['answer']})")
        for role in roles:
            answer = evaluations[role]["groups"][group]["examples"][i]
            text = answer["generation"].replace("\n", " ")
            text = text if len(text) <= 90 else text[:87] + "..."
            lines.append(f"    {role:>10} {'+' if answer['correct'] else '-'} {text}")
    return lines


def summary_text(report: dict, paths: dict[str, str] | None = None) -> str:
    """Title, method, accuracy table, checks and verdict, example answers, and where the files are."""
    request = report.get("request", {})
    method = report.get("method", {})
    settings = ", ".join(f"{k}={v}" for k, v in method.items() if k != "name")
    lines = [
        "=" * 72,
        report.get("title") or f"Unlearning: {request.get('target', '?')}",
        f"request {request.get('id', '?')} ({request.get('kind', '?')})  method {method.get('name', '?')}"
        + (f" ({settings})" if settings else ""),
        "-" * 72,
        *accuracy_table(report),
    ]
    checks = report.get("checks", [])
    if checks:
        lines += ["-" * 72, "checks:"]
        for check in checks:
            mark = "PASS" if check["passed"] else "FAIL"
            lines.append(f"  [{mark}] {check['name']}: {fmt(check.get('value'))} ({bound(check)})")
        lines.append(f"verdict: {report.get('verdict', '?').upper()}")
    examples = example_lines(report)
    if examples:
        lines += ["-" * 72, *examples]
    timings = report.get("timings", {})
    if timings:
        lines += ["-" * 72, "time: " + ", ".join(f"{k[:-2] if k.endswith('_s') else k} {v:.0f}s" for k, v in timings.items())]
    for name, path in (paths or {}).items():
        lines.append(f"{name}: {path}")
    lines.append("=" * 72)
    return "\n".join(lines)
