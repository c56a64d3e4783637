"""Render an audit report (schema "unlearn.audit/1") as one self-contained HTML page.

Read first: the verdict and the worst-case recovery; then a bar per attack, the leak@k curve, the plain
before/after table, a table per attack and example replies for the probes each attack brought back.
Inline CSS and SVG only; a section that cannot be drawn says so and the rest of the page stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..metrics.checks import bound
from .html import CSS, bar_chart_svg, esc, fmt, line_chart_svg

EXAMPLES_PER_ATTACK = 6


def _verdict(report: Mapping[str, Any]) -> str:
    verdict = str(report.get("verdict", "none"))
    cls = {"pass": "pass", "fail": "fail"}.get(verdict, "none")
    head = report.get("headline", {})
    worst = head.get("worst_recovery")
    line = (f"Worst-case recovery <b>{fmt(worst)}</b> under <b>{esc(head.get('worst_attack'))}</b>"
            if head.get("worst_attack") else "No attack produced a recovery (nothing measurable was removed, or all failed).")
    failed = head.get("failed_attacks") or []
    failed_line = f"<p class='bad-mark'>Failed attacks: {esc(', '.join(failed))}</p>" if failed else ""
    rows = "".join(
        f"<tr class=\"{'' if c.get('passed') else 'bad'}\"><td>{'✓' if c.get('passed') else '✗'}</td>"
        f"<td>{esc(c.get('name'))}</td><td class='num'>{fmt(c.get('value'))}</td>"
        f"<td class='num'>{esc(bound(c))}</td><td>{esc(c.get('description'))}</td></tr>"
        for c in report.get("checks", []))
    return (f'<div class="verdict {cls}"><span class="verdict-label">{esc(verdict.upper())}</span>'
            f"<p class='big'>{line}</p>{failed_line}"
            f"<table class='checks'><tr><th></th><th>check</th><th>value</th><th>threshold</th><th></th></tr>{rows}"
            "</table></div>")


def _bars(report: Mapping[str, Any]) -> str:
    attacks = report.get("attacks", {})
    names = list(attacks)
    values = [attacks[n].get("recovery") if attacks[n].get("status") == "ok" else None for n in names]
    chart = bar_chart_svg(names, {"recovery": values}, title="Recovery per attack (share of the removed knowledge)",
                          colours={"recovery": "#b3261e"}, y_label="recovery")
    return f'<h2>Recovery per attack</h2><div class="chart-wrap">{chart}</div>'


def _curve(report: Mapping[str, Any]) -> str:
    leak = report.get("attacks", {}).get("leak_at_k") or {}
    curve = leak.get("curve") or {}
    if not curve:
        return ""
    ks = [int(k.split("@")[1]) for k in curve]
    chart = line_chart_svg(ks, list(curve.values()), title="leak@k of the unlearned model", x_label="k (samples)",
                           y_label="leak@k")
    retain = leak.get("retain_curve") or {}
    extra = (f"<p class='small muted'>Retain model under the same sampling: "
             f"{esc(', '.join(f'{k} {fmt(v)}' for k, v in retain.items()))}</p>") if retain else ""
    return f'<h2>Sampling: leak@k</h2><div class="chart-wrap">{chart}</div>{extra}'


def _plain(report: Mapping[str, Any]) -> str:
    plain = report.get("plain", {})
    roles = list(plain)
    if not roles:
        return ""
    groups = list(plain[roles[0]])
    head = "".join(f"<th class='num'>{esc(r)}</th>" for r in roles)
    rows = "".join(f"<tr><th>{esc(g)}</th>" + "".join(
        f"<td class='num'>{fmt(plain[r].get(g, {}).get('accuracy'))}</td>" for r in roles) + "</tr>" for g in groups)
    return ("<h2>Asked plainly</h2><p class='small muted'>Share of probes answered (the audit's judge: answer span or "
            f"ROUGE-L recall).</p><table class='results'><thead><tr><th>probes</th>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _likelihood(report: Mapping[str, Any]) -> str:
    tests = dict(report.get("likelihood") or {})
    for name, a in report.get("attacks", {}).items():
        for variant, tested in (a.get("likelihood") or {}).items():
            tests[f"unlearned after {name} {variant}"] = tested
        for variant, tested in (a.get("retain_likelihood") or {}).items():
            tests[f"retain after {name} {variant}"] = tested
    if not tests:
        return ""
    wordings = sorted({w for t in tests.values() for w in t.get("wordings", {})})
    head = "".join(f"<th class='num'>{esc(w)}</th>" for w in wordings)
    rows = "".join(
        f"<tr><th>{esc(role)}</th><td class='num'>{t.get('n_probes')}</td><td class='num'>{fmt(t.get('top1'))}</td>"
        f"<td class='num'>{fmt(t.get('mean_rank'))}</td><td class='num'>{fmt(t.get('last'))}</td>"
        f"<td class='num'>{fmt(t.get('chance_top1'))}</td>"
        + "".join(f"<td class='num'>{fmt(t.get('wordings', {}).get(w, {}).get('top1'))}</td>" for w in wordings)
        + "</tr>" for role, t in tests.items())
    return ("<h2>Likelihood knowledge test</h2><p class='small muted'>Share of forget facts whose true value the "
            "weights rank first by log-likelihood among distractors no model was taught (top-1), its mean rank, "
            "the share ranked below every distractor (last), and chance (for first and for last); per wording on "
            "the right. A forgotten fact sits at the retain model's value on both sides.</p>"
            "<table class='results'><thead><tr><th>model</th><th>facts</th><th>top-1</th><th>mean rank</th>"
            f"<th>last</th><th>chance</th>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _attack_table(report: Mapping[str, Any]) -> str:
    rows = []
    for name, a in report.get("attacks", {}).items():
        if a.get("status") == "skipped":
            rows.append(f"<tr><th>{esc(name)}</th><td colspan='6' class='muted'>skipped: {esc(a.get('reason'))}</td></tr>")
            continue
        if a.get("status") != "ok":
            rows.append(f"<tr><th>{esc(name)}</th><td colspan='6' class='bad'>failed: {esc(a.get('error'))}</td></tr>")
            continue
        for variant, v in a.get("variants", {}).items():
            rows.append(f"<tr><th>{esc(name)}</th><td>{esc(variant)}</td><td class='num'>{v.get('n')}</td>"
                        f"<td class='num'>{fmt(v.get('unlearned'))}</td><td class='num'>{fmt(v.get('knowledge'))}</td>"
                        f"<td class='num'>{fmt(v.get('retain_attacked'))}</td>"
                        f"<td class='num'>{fmt(v.get('recovery'))}</td></tr>")
        for key, value in {**a.get("utility", {})}.items():
            rows.append(f"<tr><th>{esc(name)}</th><td colspan='5'>utility check: {esc(key)}</td>"
                        f"<td class='num'>{fmt(value)}</td></tr>")
    return ("<h2>Attacked</h2><div class='scroll'><table class='results'><thead><tr><th>attack</th><th>variant</th>"
            "<th>probes</th><th>plain</th><th>attacked</th><th>retain attacked</th><th>recovery</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _examples(report: Mapping[str, Any]) -> str:
    parts = []
    for name, a in report.get("attacks", {}).items():
        if a.get("status") != "ok":
            continue
        recovered = set(a.get("recovered_probes") or [])
        shown = [e for e in a.get("examples", []) if e.get("leaked") and e.get("probe") in recovered]
        if not shown:
            continue
        rows = "".join(
            f"<tr><td>{esc(e.get('variant'))}</td><td>{esc(e.get('prompt'))}</td><td class='gold'>"
            f"{esc(e.get('expected'))}</td><td class='gen bad'>{esc(e.get('reply'))}</td></tr>"
            for e in shown[:EXAMPLES_PER_ATTACK])
        parts.append(f"<h3>{esc(name)}</h3><table class='examples'><tr><th>variant</th><th>prompt (last turn)</th>"
                     f"<th>answer</th><th>reply</th></tr>{rows}</table>")
    if not parts:
        return "<h2>Recovered answers</h2><p>No attack brought back a forgotten answer.</p>"
    return "<h2>Recovered answers</h2><p class='small muted'>Probes the unlearned model did not answer plainly but " \
           "answered under the attack.</p>" + "".join(parts)


def _footer(report: Mapping[str, Any]) -> str:
    timings = report.get("timings", {})
    rows = "".join(f"<tr><th>{esc(k)}</th><td class='num'>{float(v):.1f} s</td></tr>" for k, v in timings.items())
    seconds = "".join(f"<tr><th>{esc(n)}</th><td class='num'>{float(a.get('seconds', 0)):.1f} s</td></tr>"
                      for n, a in report.get("attacks", {}).items())
    return (f"<h2>Time</h2><table class='timings'>{seconds}{rows}</table>"
            f"<p class='small muted'>Report schema {esc(report.get('schema'))}.</p>")


def render_audit_html(report: Mapping[str, Any]) -> str:
    sections = []
    for section in (_verdict, _bars, _curve, _plain, _likelihood, _attack_table, _examples, _footer):
        try:
            sections.append(section(report))
        except Exception as exc:  # noqa: BLE001 - one broken section must not cost the rest of the page
            sections.append(f"<p class='section-error'>Could not render {esc(section.__name__)}: {esc(repr(exc))}</p>")
    request = report.get("request", {})
    models = report.get("models", {})
    meta = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(v)}</code></td></tr>" for k, v in models.items())
    title = report.get("title", "Audit")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
            f"<p class='muted'>Request <code>{esc(request.get('id'))}</code> · created {esc(report.get('created'))}</p>"
            f"<table class='meta'>{meta}</table>{''.join(sections)}</body></html>\n")
