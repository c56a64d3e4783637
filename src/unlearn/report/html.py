"""Render an unlearning report (schema "unlearn.report/1") as one self-contained HTML page.

The page is the first thing a person reads after a run, so it leads with the verdict and the
before/after numbers, then shows the evidence: per-group tables, example answers, the training
curve and timings. Everything is inline (CSS, SVG); there is no JavaScript and nothing is fetched
from the network, so the file can be mailed, archived or opened offline.

Every value that comes from the report is escaped, and every key except the bare minimum is
optional: a section whose data is missing is left out or shows "n/a" rather than raising.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from unlearn.io import atomic_write_json, atomic_write_text

from ..metrics.checks import bound
from .charts import bar_chart_svg, finite_number, line_chart_svg

__all__ = ["bar_chart_svg", "line_chart_svg", "render_html", "write_reports"]

SCHEMA = "unlearn.report/1"

# Probe groups in the order a reader expects them; other groups follow in order of appearance.
GROUP_ORDER = ("forget", "forget_paraphrase", "neighbour", "general")

ROLE_COLOURS = {
    "original": "#8a8f98",
    "deployed": "#e07b39",
    "unlearned": "#2f6fbf",
    "retain": "#3a9a5b",
}
EXTRA_COLOURS = ("#8e5cc2", "#c2477a", "#2aa3a3", "#b59a2a", "#5c6bc0", "#795548")

ROLE_NOTES = {
    "original": "the base model before it was taught anything",
    "deployed": "the model that knows the target: the starting point of unlearning",
    "unlearned": "the deployed model after unlearning",
    "retain": "a reference model that never saw the forget data: what ideal forgetting looks like",
}

EXAMPLE_CHARS = 200
NEIGHBOUR_EXAMPLES = 5


# --------------------------------------------------------------------------- small helpers


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _dict(value: Any) -> dict:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else []


def fmt(value: Any, digits: int = 3) -> str:
    """Format a report value for display (already escaped): numbers with `digits` decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return esc(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"
    if isinstance(value, (dict, list, tuple)):
        return esc(json.dumps(value, default=str, ensure_ascii=False))
    return esc(value)


def _truncate(text: str, limit: int = EXAMPLE_CHARS) -> str:
    text = " ".join(text.split()) if len(text) > limit else text
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def _seconds(value: Any) -> str:
    seconds = finite_number(value)
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _mark(passed: Any) -> str:
    if passed is True:
        return '<span class="ok-mark" title="passed">✓</span>'
    if passed is False:
        return '<span class="bad-mark" title="failed">✗</span>'
    return '<span class="muted">–</span>'


def role_colours(roles: Iterable[str]) -> dict[str, str]:
    """A distinct colour per role: fixed ones for the known roles, a palette for the rest."""
    colours: dict[str, str] = {}
    spare = iter(EXTRA_COLOURS)
    for role in roles:
        if role in ROLE_COLOURS:
            colours[role] = ROLE_COLOURS[role]
        else:
            colours[role] = next(spare, "#444444")
    return colours


def ordered_groups(names: Iterable[str]) -> list[str]:
    """Known probe groups first in their canonical order, then the others as they came."""
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    known = [g for g in GROUP_ORDER if g in seen]
    return known + [g for g in seen if g not in GROUP_ORDER]


# --------------------------------------------------------------------------- report access


class _View:
    """Defensive accessors over a report dict of unknown completeness."""

    def __init__(self, report: Mapping[str, Any]):
        self.report = _dict(report)
        self.evaluations = {str(k): _dict(v) for k, v in _dict(self.report.get("evaluations")).items()}
        listed = [str(r) for r in _list(self.report.get("roles"))]
        roles = [r for r in listed if r in self.evaluations]
        roles += [r for r in self.evaluations if r not in roles]
        self.roles = roles
        self.colours = role_colours(roles)
        names: list[str] = []
        for role in roles:
            names.extend(str(g) for g in self.groups_of(role))
        self.groups = ordered_groups(names)

    def groups_of(self, role: str) -> dict:
        return _dict(self.evaluations.get(role, {}).get("groups"))

    def group(self, role: str, group: str) -> dict:
        return _dict(self.groups_of(role).get(group))

    def accuracy(self, role: str, group: str) -> float | None:
        return finite_number(self.group(role, group).get("accuracy"))


# --------------------------------------------------------------------------- sections


def _kv_line(mapping: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    skip = set(skip)
    items = [
        f"{esc(k)}={f'{v:.6g}' if isinstance(v, float) and math.isfinite(v) else fmt(v)}"
        for k, v in mapping.items()
        if k not in skip
    ]
    return ", ".join(items)


def _header(view: _View) -> str:
    report = view.report
    request = _dict(report.get("request"))
    method = _dict(report.get("method"))
    model = _dict(report.get("model"))
    target = request.get("target")
    title = report.get("title") or (f"Unlearning report: {target}" if target else "Unlearning report")

    rows: list[tuple[str, str]] = []
    if request:
        bits = []
        if target is not None:
            bits.append(f"<strong>{esc(target)}</strong>")
        meta = []
        if request.get("id") is not None:
            meta.append(f"id <code>{esc(request['id'])}</code>")
        if request.get("kind") is not None:
            meta.append(f"kind {esc(request['kind'])}")
        if request.get("hash") is not None:
            full = str(request["hash"])
            meta.append(f'hash <code title="{esc(full)}">{esc(full[:12])}</code>')
        if meta:
            bits.append(f'<span class="muted">({"; ".join(meta)})</span>')
        rows.append(("Request", " ".join(bits) or "n/a"))
        sizes = []
        for key, label in (
            ("forget_qa", "forget QA"),
            ("forget_qa_with_focus", "with focus"),
            ("forget_texts", "forget texts"),
            ("retain_qa", "retain QA"),
            ("retain_texts", "retain texts"),
            ("anchor_qa", "anchor QA"),
            ("anchor_texts", "anchor texts"),
        ):
            if key in request:
                sizes.append(f"{label} {fmt(request[key])}")
        probes = _dict(request.get("probes"))
        if probes:
            sizes.append("probes: " + ", ".join(f"{esc(k)} {fmt(v)}" for k, v in probes.items()))
        if sizes:
            rows.append(("Data", " · ".join(sizes)))
    if method:
        name = method.get("name")
        params = _kv_line(method, skip=("name",))
        text = f"<strong>{esc(name)}</strong>" if name is not None else ""
        if params:
            text += f' <span class="muted">{params}</span>'
        rows.append(("Method", text or "n/a"))
    if model:
        text = f"<strong>{esc(model.get('name'))}</strong>" if model.get("name") is not None else ""
        if model.get("fingerprint") is not None:
            text += f' <span class="muted">fingerprint <code>{esc(model["fingerprint"])}</code></span>'
        extra = _kv_line(model, skip=("name", "fingerprint"))
        if extra:
            text += f' <span class="muted">{extra}</span>'
        rows.append(("Model", text or "n/a"))
    if report.get("created") is not None:
        rows.append(("Created", esc(report["created"])))

    kind = report.get("kind")
    badge = f'<span class="badge">{esc(kind)}</span>' if kind else ""
    table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return (
        f"<header><h1>{esc(title)} {badge}</h1>"
        + (f'<table class="meta">{table}</table>' if table else "")
        + "</header>"
    )


def _headline(view: _View) -> str:
    """One line per key group: accuracy across roles, the numbers a reader looks for first."""
    lines = []
    for group in ("forget", "forget_paraphrase", "neighbour", "general"):
        if group not in view.groups:
            continue
        cells = [
            f'<span class="swatch" style="background:{esc(view.colours[r])}"></span>{esc(r)} '
            f"<strong>{fmt(view.accuracy(r, group))}</strong>"
            for r in view.roles
            if view.group(r, group)
        ]
        if cells:
            lines.append(f"<li><span class='group'>{esc(group)}</span> accuracy: {' · '.join(cells)}</li>")
    return f'<ul class="headline">{"".join(lines)}</ul>' if lines else ""


def _verdict(view: _View) -> str:
    verdict = view.report.get("verdict")
    verdict_text = str(verdict).strip().lower() if verdict is not None else ""
    if verdict_text == "pass":
        cls, label = "pass", "PASS"
    elif verdict_text == "fail":
        cls, label = "fail", "FAIL"
    else:
        cls, label = "none", (str(verdict).upper() if verdict_text else "NO VERDICT")

    checks = [c for c in _list(view.report.get("checks")) if isinstance(c, Mapping)]
    rows = []
    for check in checks:
        passed = check.get("passed")
        row_cls = "ok" if passed is True else "bad" if passed is False else ""
        desc = check.get("description")
        rows.append(
            f'<tr class="{row_cls}"><td class="mark">{_mark(passed)}</td>'
            f"<td>{esc(check.get('name', 'check'))}"
            + (f'<div class="small muted">{esc(desc)}</div>' if desc else "")
            + f'</td><td class="num">{fmt(check.get("value"))}</td>'
            f'<td class="num">{esc(bound(check))}</td></tr>'
        )
    if rows:
        passed_n = sum(1 for c in checks if c.get("passed") is True)
        table = (
            f'<p class="small">{passed_n} of {len(checks)} checks passed.</p>'
            '<table class="checks"><thead><tr><th></th><th>check</th><th>value</th>'
            f"<th>threshold</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    else:
        table = '<p class="muted small">No checks recorded.</p>'
    return (
        f'<section class="verdict {cls}"><div class="verdict-label">{esc(label)}</div>'
        f"{_headline(view)}{table}</section>"
    )


def _chart_section(view: _View) -> str:
    if not view.roles or not view.groups:
        return ""
    series = {r: [view.accuracy(r, g) for g in view.groups] for r in view.roles}
    svg = bar_chart_svg(
        view.groups, series, title="Probe accuracy by model", colours=view.colours, y_label="accuracy"
    )
    notes = [
        f'<li><span class="swatch" style="background:{esc(view.colours[r])}"></span>'
        f"<strong>{esc(r)}</strong>: {esc(ROLE_NOTES[r])}</li>"
        for r in view.roles
        if r in ROLE_NOTES
    ]
    legend = f'<ul class="roles small">{"".join(notes)}</ul>' if notes else ""
    return f'<section><h2>Before / after</h2><div class="chart-wrap">{svg}</div>{legend}</section>'


def _results_table(view: _View) -> str:
    if not view.roles:
        return '<section><h2>Results</h2><p class="muted">No evaluations in this report.</p></section>'
    head = "".join(
        f'<th><span class="swatch" style="background:{esc(view.colours[r])}"></span>{esc(r)}</th>'
        for r in view.roles
    )
    body = []
    for group in view.groups:
        cells = []
        for role in view.roles:
            result = view.group(role, group)
            if not result:
                cells.append('<td class="num muted">–</td>')
                continue
            sub = []
            if "rouge_l_recall" in result:
                sub.append(f"ROUGE-L {fmt(result.get('rouge_l_recall'))}")
            if result.get("n") is not None:
                sub.append(f"n={fmt(result.get('n'))}")
            cells.append(
                f'<td class="num"><div class="big">{fmt(result.get("accuracy"))}</div>'
                + (f'<div class="small muted">{" · ".join(sub)}</div>' if sub else "")
                + "</td>"
            )
        body.append(
            f"<tr><th>{esc(group)} <span class='muted small'>accuracy</span></th>{''.join(cells)}</tr>"
        )

    logprob_keys: list[str] = []
    for role in view.roles:
        for key in _dict(view.evaluations[role].get("answer_logprob")):
            if str(key) not in logprob_keys:
                logprob_keys.append(str(key))
    for key in ordered_groups(logprob_keys):
        cells = "".join(
            f'<td class="num">{fmt(_dict(view.evaluations[r].get("answer_logprob")).get(key))}</td>'
            for r in view.roles
        )
        body.append(
            f"<tr><th>answer log-prob <span class='muted small'>({esc(key)})</span></th>{cells}</tr>"
        )

    if any(_dict(view.evaluations[r].get("likelihood")).get("top1") is not None for r in view.roles):
        cells = []
        for role in view.roles:
            tested = _dict(view.evaluations[role].get("likelihood"))
            cells.append(f'<td class="num">{fmt(tested.get("top1"))}<div class="small muted">rank '
                         f'{fmt(tested.get("mean_rank"))} · last {fmt(tested.get("last"))} · chance '
                         f'{fmt(tested.get("chance_top1"))}</div></td>')
        body.append("<tr><th>likelihood top-1 <span class='muted small'>(true value ranked first among "
                    f"distractors)</span></th>{''.join(cells)}</tr>")

    if any(_dict(view.evaluations[r].get("fluency")) for r in view.roles):
        cells = []
        for role in view.roles:
            fluency = _dict(view.evaluations[role].get("fluency"))
            if not fluency:
                cells.append('<td class="num muted">–</td>')
                continue
            passed = fluency.get("passed")
            label = "passed" if passed is True else "failed" if passed is False else "n/a"
            detail = []
            for key, short in (("repetition", "rep"), ("entropy", "ent"), ("empty_rate", "empty")):
                if key in fluency:
                    detail.append(f"{short} {fmt(fluency.get(key))}")
            cells.append(
                f'<td class="num">{_mark(passed)} {label}'
                + (f'<div class="small muted">{" · ".join(detail)}</div>' if detail else "")
                + "</td>"
            )
        body.append(f"<tr><th>fluency</th>{''.join(cells)}</tr>")

    return (
        "<section><h2>Results</h2>"
        f'<table class="results"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        "</section>"
    )


def _examples_of(view: _View, role: str, group: str) -> list[dict]:
    return [e for e in _list(view.group(role, group).get("examples")) if isinstance(e, Mapping)]


def _match(examples: list[dict], index: int, question: Any) -> dict | None:
    """The example for `question`: by question text first, else the same index if compatible."""
    if question is not None:
        for example in examples:
            if example.get("question") == question:
                return example
    if index < len(examples):
        candidate = examples[index]
        if question is None or candidate.get("question") in (None, question):
            return candidate
    return None


def _examples_table(view: _View, group: str, limit: int | None, heading: str) -> str:
    per_role = {r: _examples_of(view, r, group) for r in view.roles}
    base_role = max(view.roles, key=lambda r: len(per_role[r]), default=None)
    if base_role is None or not per_role[base_role]:
        return ""
    base = per_role[base_role][:limit] if limit is not None else per_role[base_role]
    head = "".join(
        f'<th><span class="swatch" style="background:{esc(view.colours[r])}"></span>{esc(r)}</th>'
        for r in view.roles
    )
    rows = []
    for i, example in enumerate(base):
        question = example.get("question")
        cells = []
        for role in view.roles:
            found = _match(per_role[role], i, question)
            if found is None:
                cells.append('<td class="gen muted">–</td>')
                continue
            correct = found.get("correct")
            cls = "ok" if correct is True else "bad" if correct is False else ""
            generation = found.get("generation")
            text = "" if generation is None else str(generation)
            shown = (
                f"{esc(_truncate(text))}" if text.strip() else '<span class="muted"><em>(empty)</em></span>'
            )
            extra = ""
            if "rouge_l_recall" in found:
                extra = f'<div class="small muted">ROUGE-L {fmt(found.get("rouge_l_recall"))}</div>'
            title = f' title="{esc(text[:2000])}"' if len(text) > EXAMPLE_CHARS else ""
            cells.append(f'<td class="gen {cls}"{title}>{_mark(correct)} {shown}{extra}</td>')
        rows.append(
            f'<tr><td class="num muted">{i + 1}</td><td>{esc(_truncate(str(question or "")))}</td>'
            f'<td class="gold">{esc(example.get("answer", ""))}</td>{"".join(cells)}</tr>'
        )
    total = len(per_role[base_role])
    shown_note = f" (first {len(base)} of {total})" if len(base) < total else ""
    return (
        f"<h3>{esc(heading)}{esc(shown_note)}</h3>"
        '<div class="scroll"><table class="examples"><thead><tr><th>#</th><th>question</th>'
        f"<th>gold answer</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _examples(view: _View) -> str:
    parts = [
        _examples_table(view, "forget", None, "Forget probes"),
        _examples_table(view, "neighbour", NEIGHBOUR_EXAMPLES, "Neighbour probes"),
    ]
    body = "".join(p for p in parts if p)
    if not body:
        return ""
    return (
        "<section><h2>Example answers</h2>"
        '<p class="small muted">Green cells were scored correct, red incorrect. '
        f"Generations longer than {EXAMPLE_CHARS} characters are cut; hover for the full text.</p>"
        f"{body}</section>"
    )


def _training(view: _View) -> str:
    training = view.report.get("training")
    if not isinstance(training, Mapping):
        return ""
    history = [h for h in _list(training.get("history")) if isinstance(h, Mapping)]
    xs = [h.get("step", i + 1) for i, h in enumerate(history)]
    ys = [h.get("loss") for h in history]
    facts = []
    if "steps" in training:
        facts.append(f"steps <strong>{fmt(training.get('steps'))}</strong>")
    if "seconds" in training:
        facts.append(f"time <strong>{_seconds(training.get('seconds'))}</strong>")
    if "stopped_early" in training:
        facts.append(f"stopped early <strong>{fmt(training.get('stopped_early'))}</strong>")
    losses = [v for v in (finite_number(y) for y in ys) if v is not None]
    if losses:
        facts.append(f"loss {losses[0]:.4g} → {losses[-1]:.4g}")
    chart = (
        f'<div class="chart-wrap">{line_chart_svg(xs, ys, title="Training loss", x_label="step", y_label="loss")}</div>'
        if losses
        else '<p class="muted small">No training loss recorded.</p>'
    )
    return f"<section><h2>Training</h2><p>{' · '.join(facts)}</p>{chart}</section>"


def _footer(view: _View) -> str:
    report = view.report
    parts = []
    timings = _dict(report.get("timings"))
    if timings:
        rows = []
        for key, value in timings.items():
            label = str(key)[:-2] if str(key).endswith("_s") else str(key)
            cls = ' class="total"' if label == "total" else ""
            rows.append(
                f"<tr{cls}><th>{esc(label.replace('_', ' '))}</th>"
                f'<td class="num">{_seconds(value)}</td></tr>'
            )
        parts.append(f'<h2>Timings</h2><table class="timings">{"".join(rows)}</table>')
    if report.get("output_model") is not None:
        parts.append(f"<h2>Output model</h2><p><code>{esc(report['output_model'])}</code></p>")
    notes = report.get("notes")
    notes = [notes] if isinstance(notes, str) else _list(notes)
    if notes:
        items = "".join(f"<li>{esc(n)}</li>" for n in notes)
        parts.append(f"<h2>Notes</h2><ul>{items}</ul>")
    schema = report.get("schema")
    parts.append(f'<p class="small muted">Report schema {esc(schema or "unknown")}.</p>')
    return "<section>" + "".join(parts) + "</section>"


CSS = """
:root { --ok:#1e7b34; --ok-bg:#e7f5ea; --bad:#b3261e; --bad-bg:#fdecea; --muted:#6b7280; --line:#e3e6ea; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 24px 28px 48px; color: #1f2328; background: #fff;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
h1 { font-size: 24px; margin: 0 0 10px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6;
       padding: 1px 4px; border-radius: 4px; word-break: break-all; }
table { border-collapse: collapse; }
th, td { padding: 5px 10px; text-align: left; vertical-align: top; }
.meta th { color: var(--muted); font-weight: 600; padding-left: 0; white-space: nowrap; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; text-transform: uppercase; color: var(--muted);
         border: 1px solid var(--line); border-radius: 10px; padding: 1px 8px; vertical-align: middle; }
.muted { color: var(--muted); }
.small { font-size: 12px; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.big { font-size: 16px; font-weight: 600; }
.verdict { margin: 18px 0; padding: 14px 18px; border-radius: 8px; border: 2px solid; }
.verdict.pass { border-color: var(--ok); background: var(--ok-bg); }
.verdict.fail { border-color: var(--bad); background: var(--bad-bg); }
.verdict.none { border-color: var(--line); background: #f7f7f8; }
.verdict-label { font-size: 28px; font-weight: 800; letter-spacing: 1px; }
.verdict.pass .verdict-label { color: var(--ok); }
.verdict.fail .verdict-label { color: var(--bad); }
.headline { list-style: none; padding: 0; margin: 8px 0; }
.headline li { margin: 2px 0; }
.headline .group { display: inline-block; min-width: 150px; font-weight: 600; }
.checks { background: #fff; border: 1px solid var(--line); margin-top: 6px; }
.checks th { border-bottom: 1px solid var(--line); font-size: 12px; color: var(--muted); }
.checks td { border-bottom: 1px solid var(--line); }
.checks tr.bad td { background: var(--bad-bg); }
.ok-mark { color: var(--ok); font-weight: 700; }
.bad-mark { color: var(--bad); font-weight: 700; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; }
.roles { list-style: none; padding: 0; margin: 6px 0; }
.chart-wrap { overflow-x: auto; }
svg.chart { max-width: 100%; height: auto; }
.grid { stroke: #e5e7eb; stroke-width: 1; }
.axis { stroke: #9ca3af; stroke-width: 1; }
.results { border: 1px solid var(--line); }
.results th, .results td { border-bottom: 1px solid var(--line); }
.results thead th { background: #f7f7f8; }
.scroll { overflow-x: auto; }
.examples { border: 1px solid var(--line); font-size: 13px; width: 100%; }
.examples th { background: #f7f7f8; border-bottom: 1px solid var(--line); }
.examples td { border-bottom: 1px solid var(--line); }
.examples td.gen { min-width: 160px; max-width: 320px; word-wrap: break-word; }
.examples td.gold { font-weight: 600; }
td.ok { background: var(--ok-bg); }
td.bad { background: var(--bad-bg); }
.timings tr.total th, .timings tr.total td { font-weight: 700; border-top: 1px solid var(--line); }
.section-error { color: var(--bad); }
@media print { body { max-width: none; padding: 0; } .scroll, .chart-wrap { overflow: visible; } }
"""


def _safe(section, view: _View) -> str:
    """Render one section; a bug in it must not cost the reader the rest of the page."""
    try:
        return section(view)
    except Exception as exc:  # noqa: BLE001 - deliberately broad: the page is a last-mile artefact
        name = section.__name__.strip("_")
        return f'<p class="section-error">Could not render the {esc(name)} section: {esc(repr(exc))}</p>'


def render_html(report: Mapping[str, Any]) -> str:
    """The report as a self-contained HTML page (inline CSS and SVG, no scripts, no URLs)."""
    view = _View(report)
    target = _dict(view.report.get("request")).get("target")
    title = view.report.get("title") or (f"Unlearning report: {target}" if target else "Unlearning report")
    body = "".join(
        _safe(section, view)
        for section in (_header, _verdict, _chart_section, _results_table, _examples, _training, _footer)
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def write_reports(report: Mapping[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write `report.json` and `report.html` into `out_dir` atomically; return both paths."""
    out_dir = Path(out_dir)
    page = render_html(report)
    json_path = out_dir / "report.json"
    html_path = out_dir / "report.html"
    atomic_write_json(json_path, report)
    atomic_write_text(html_path, page)
    return json_path, html_path
