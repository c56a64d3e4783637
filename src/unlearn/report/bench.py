"""A benchmark sweep as one self-contained HTML page: the comparison table and a forget-quality vs
model-utility scatter with the target and retain models marked (inline SVG, no scripts, no URLs)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .html import CSS, esc, nice_ticks, svg_open, tick_labels

MARKERS = {"target": "#e07b39", "retain": "#3a9a5b", "run": "#2f6fbf", "best": "#b3261e"}
# Columns of the TOFU comparison table, text and HTML: (summary key, short header).
TABLE_COLUMNS = (
    ("forget_quality", "forget_quality"),
    ("model_utility", "model_utility"),
    ("forget_truth_ratio", "forget_TR"),
    ("forget_Q_A_Prob", "forget_prob"),
    ("forget_Q_A_ROUGE", "forget_ROUGE"),
    ("retain_Q_A_ROUGE", "retain_ROUGE"),
    ("extraction_strength", "extraction"),
    ("privleak", "privleak"),
)
TABLE_KEYS = tuple(key for key, _ in TABLE_COLUMNS)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def scatter_svg(points: Sequence[Mapping[str, Any]], *, x_label: str, y_label: str, title: str = "",
                log_x: bool = False, width: int = 640, height: int = 380) -> str:
    """Points {'x', 'y', 'label', 'kind'} (kind picks the colour from MARKERS); non-finite points and,
    with `log_x`, non-positive x are left out. Each point carries its label as a tooltip and a text tag."""
    kept = []
    for p in points:
        x, y = _finite(p.get("x")), _finite(p.get("y"))
        if x is None or y is None or (log_x and x <= 0):
            continue
        kept.append((math.log10(x) if log_x else x, y, str(p.get("label", "")), str(p.get("kind", "run"))))
    parts = [svg_open(width, height, title or "scatter")]
    if not kept:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="svg-muted">no data</text>')
        return "".join(parts) + "</svg>"
    left, right, upper, lower = 60, 20, 32, 44
    plot_w, plot_h = width - left - right, height - upper - lower
    xs, ys = [p[0] for p in kept], [p[1] for p in kept]
    x_ticks = nice_ticks(min(xs) - 0.5, max(xs) + 0.5, 6, integer=log_x) if log_x else nice_ticks(min(xs), max(xs), 6)
    y_ticks = nice_ticks(min(ys), max(ys), 5)
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    x_hi, y_hi = (x_hi if x_hi > x_lo else x_lo + 1), (y_hi if y_hi > y_lo else y_lo + 1)

    def sx(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * plot_w

    def sy(v: float) -> float:
        return upper + plot_h - (v - y_lo) / (y_hi - y_lo) * plot_h

    if title:
        parts.append(f'<text x="{left}" y="20" class="svg-title">{esc(title)}</text>')
    for v, text in zip(y_ticks, tick_labels(y_ticks), strict=True):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" text-anchor="end" class="svg-small">{text}</text>')
    x_texts = [f"1e{int(v)}" for v in x_ticks] if log_x else tick_labels(x_ticks)
    for v, text in zip(x_ticks, x_texts, strict=True):
        parts.append(f'<line x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{upper}" y2="{upper + plot_h}" class="grid"/>'
                     f'<text x="{sx(v):.1f}" y="{upper + plot_h + 16}" text-anchor="middle" class="svg-small">'
                     f"{text}</text>")
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle" class="svg-small">'
                 f"{esc(x_label)}</text>"
                 f'<text transform="translate(14 {upper + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
                 f'class="svg-small">{esc(y_label)}</text>')
    for x, y, label, kind in kept:
        colour = MARKERS.get(kind, MARKERS["run"])
        shape = (f'<rect x="{sx(x) - 5:.1f}" y="{sy(y) - 5:.1f}" width="10" height="10" fill="{colour}">'
                 if kind in ("target", "retain") else f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{colour}">')
        closing = "</rect>" if kind in ("target", "retain") else "</circle>"
        parts.append(f"{shape}<title>{esc(label)}</title>{closing}"
                     f'<text x="{sx(x) + 7:.1f}" y="{sy(y) - 6:.1f}" class="svg-small">{esc(label)}</text>')
    return "".join(parts) + "</svg>"


def format_value(value: Any) -> str:
    """'n/a' for a missing or non-finite value, scientific below 1e-3 (forget quality), else 3 decimals."""
    v = _finite(value)
    if v is None:
        return "n/a"
    return f"{v:.1e}" if v and abs(v) < 1e-3 else f"{v:.3f}"


def text_table(rows: Sequence[tuple[str, Mapping[str, Any] | None]], columns: Sequence[tuple[str, str]],
               cell: int) -> str:
    """A plain-text table: one line per (label, summary), the `columns` (key, header) right-aligned in cells of
    `cell` characters; a None summary is a failed run."""
    width = max([len("model"), *(len(label) for label, _ in rows)]) + 2
    lines = ["model".ljust(width) + "".join(header.rjust(cell) for _, header in columns)]
    for label, summary in rows:
        cells = ["failed".rjust(cell)] if summary is None else [format_value(summary.get(k)).rjust(cell)
                                                                  for k, _ in columns]
        lines.append(label.ljust(width) + "".join(cells))
    return "\n".join(lines)


def render_sweep_html(sweep: Mapping[str, Any]) -> str:
    percent = int(str(sweep.get("split", "forget10")).removeprefix("forget") or 10)
    retain_label = f"retain{100 - percent:02d} (gold)"
    rows = [("target", sweep.get("target") or {}, "target"), (retain_label, sweep.get("retain") or {}, "retain")]
    for run in sweep.get("runs", []):
        kind = "best" if run.get("label") == sweep.get("best") else "run"
        rows.append((str(run.get("label")), run.get("summary") if run.get("status") == "ok" else None, kind))
    points = [{"x": s.get("forget_quality"), "y": s.get("model_utility"), "label": label, "kind": kind}
              for label, s, kind in rows if s]
    chart = scatter_svg(points, x_label="forget quality (KS p-value, log scale; higher: closer to the retain model)",
                        y_label="model utility", title="Forget quality vs model utility", log_x=True)
    head = "".join(f"<th>{esc(k)}</th>" for k in TABLE_KEYS)
    body = []
    for label, summary, kind in rows:
        cls = ' class="best"' if kind == "best" else ""
        if summary is None:
            error = next((r.get("error") for r in sweep.get("runs", []) if r.get("label") == label), "")
            body.append(f'<tr><th>{esc(label)}</th><td colspan="{len(TABLE_KEYS)}" class="bad">failed: '
                        f"{esc(error)}</td></tr>")
            continue
        cells = "".join(f'<td class="num">{format_value(summary.get(k))}</td>' for k in TABLE_KEYS)
        body.append(f"<tr{cls}><th>{esc(label)}</th>{cells}</tr>")
    title = f"TOFU {sweep.get('setting', '')} {sweep.get('split', '')}: method sweep"
    best = sweep.get("best")
    best_line = (f"<p>Best trade-off: <b>{esc(best)}</b> ({esc(sweep.get('best_rule', ''))}).</p>" if best
                 else f"<p>No run meets the rule: {esc(sweep.get('best_rule', ''))}.</p>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{CSS} tr.best th, tr.best td {{ background: #fdf3e7; }}</style></head>"
        f"<body><h1>{esc(title)}</h1>{best_line}<div class=\"chart-wrap\">{chart}</div>"
        f'<h2>Results</h2><div class="scroll"><table class="results"><thead><tr><th>model</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        f'<p class="small muted">Schema {esc(sweep.get("schema", "unknown"))}. Squares: target (orange) and '
        "retain (green) models; red: the best trade-off.</p></body></html>\n"
    )


def write_sweep_html(sweep: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, render_sweep_html(sweep))
    return path
