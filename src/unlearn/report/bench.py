"""A benchmark sweep as one self-contained HTML page: the comparison table and a forget-quality vs
model-utility scatter with the target and retain models marked (inline SVG, no scripts, no URLs)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .charts import scatter_svg
from .html import CSS, esc

# Columns of the TOFU comparison table, text and HTML: (summary key, short header).
TABLE_COLUMNS = (
    ("forget_quality", "forget_quality"),
    ("model_utility", "model_utility"),
    ("unseen_forget_quality", "FQ_unseen"),
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
