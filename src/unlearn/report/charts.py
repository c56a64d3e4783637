"""Charts of the HTML pages, drawn with matplotlib and embedded as inline SVG.

The pages are self-contained and fetch nothing, so the SVG is trimmed to what inline HTML5 needs: no XML
prologue or DOCTYPE, no namespace or metadata URLs, no global style sheet; text stays text (selectable,
searchable) and every bar or point carries its value as a tooltip (`<title>`). Output is deterministic
(fixed hash salt, no dates), so a report rendered twice is the same file.
"""

from __future__ import annotations

import functools
import hashlib
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

BAR_PALETTE = ("#2f6fbf", "#e07b39", "#3a9a5b", "#8a8f98", "#8e5cc2", "#c2477a", "#2aa3a3", "#b59a2a")
MARKERS = {"target": "#e07b39", "retain": "#3a9a5b", "run": "#2f6fbf", "best": "#b3261e"}
DPI = 100  # width and height below are in pixels


def finite_number(value: Any) -> float | None:
    """A finite float, or None for anything missing, non-numeric, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


STYLE = {"svg.fonttype": "none", "svg.hashsalt": "unlearn", "font.size": 9}


def _styled(chart):
    """Draw `chart` under the pages' matplotlib settings, leaving the caller's settings (and any pyplot
    figures or backend) untouched."""

    @functools.wraps(chart)
    def draw(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return chart(*args, **kwargs)

    return draw


def _figure(width: int, height: int, title: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.subplots()
    if title:
        ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _inline_svg(fig, label: str, tips: Mapping[str, str]) -> str:
    """The figure as an inline <svg>: trimmed as the module docstring says, tooltips added to the groups
    whose gid is a key of `tips`."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    svg = re.sub(r"<defs>\s*<style[^>]*>.*?</style>\s*</defs>", "", svg, flags=re.S)
    svg = re.sub(r'<svg ([^>]*)width="[^"]*" height="[^"]*"',
                 lambda m: f'<svg {m.group(1)}class="chart" role="img" aria-label="{html.escape(label)}"', svg, count=1)
    svg = svg.replace(">", f"><title>{html.escape(label)}</title>", 1)
    for gid, tip in tips.items():
        svg = svg.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{html.escape(tip)}</title>', 1)
    return svg.strip()


def _gid(title: str, *parts: object) -> str:
    """An id unique within a page: charts differ in title."""
    return "tip-" + hashlib.sha256(repr((title, *parts)).encode()).hexdigest()[:10]


@_styled
def _no_data(width: int, height: int, title: str) -> str:
    fig, ax = _figure(width, height, title)
    ax.axis("off")
    ax.text(0.5, 0.5, "no data", ha="center", va="center", color="#6b7280", transform=ax.transAxes)
    return _inline_svg(fig, title or "chart", {})


@_styled
def bar_chart_svg(categories: Sequence[str], series: Mapping[str, Sequence[float | None]], *, title: str = "",
                  colours: Mapping[str, str] | None = None, width: int = 760, height: int = 330,
                  y_max: float = 1.0, y_label: str = "") -> str:
    """A grouped bar chart: one group per category, one bar per series, each bar labelled with its value.
    Missing, None or NaN values draw no bar and are labelled "n/a". The y axis runs from 0 to `y_max`
    (widened when a value exceeds it)."""
    categories, names = [str(c) for c in categories], [str(n) for n in series]
    if not categories or not names:
        return _no_data(width, height, title)
    colours = {n: (colours or {}).get(n) or BAR_PALETTE[i % len(BAR_PALETTE)] for i, n in enumerate(names)}
    values = {n: [finite_number(v) for v in list(series[n]) + [None] * (len(categories) - len(series[n]))] for n in names}
    top = max([y_max] + [v for vs in values.values() for v in vs if v is not None])
    fig, ax = _figure(width, height, title)
    bar_w = 0.8 / len(names)
    tips = {}
    for si, name in enumerate(names):
        for ci, category in enumerate(categories):
            x, v = ci - 0.4 + bar_w * (si + 0.5), values[name][ci]
            if v is None:
                ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8, color="#6b7280")
                continue
            gid = _gid(title, name, category)
            ax.bar(x, max(v, 0.0), bar_w * 0.92, color=colours[name], gid=gid)
            ax.text(x, max(v, 0.0), f"{v:.3f}" if bar_w >= 0.3 else f"{v:.2f}", ha="center", va="bottom", fontsize=8)
            tips[gid] = f"{name} · {category}: {v:.3f}"
    ax.set_xticks(range(len(categories)), categories)
    ax.set_ylim(0, (top if top > 0 else 1.0) * 1.08)
    ax.set_ylabel(y_label)
    ax.grid(axis="y", color="#e5e7eb")
    ax.set_axisbelow(True)
    from matplotlib.patches import Patch

    fig.legend([Patch(color=colours[n]) for n in names], names, loc="upper right", ncols=min(len(names), 6),
               frameon=False, fontsize=8)  # on the title's line, clear of the bars
    fig.tight_layout()
    return _inline_svg(fig, title or "bar chart", tips)


@_styled
def line_chart_svg(xs: Sequence[float], ys: Sequence[float | None], *, title: str = "", x_label: str = "",
                   y_label: str = "", colour: str = "#2f6fbf", width: int = 560, height: int = 240) -> str:
    """A single-series line chart; points with a missing or non-finite x or y are skipped. No points: a
    "no data" placeholder; one point: a dot. Up to 60 points carry a marker with its value as a tooltip."""
    points = [(x, y) for x, y in ((finite_number(a), finite_number(b)) for a, b in zip(xs, ys, strict=False))
              if x is not None and y is not None]
    if not points:
        return _no_data(width, height, title)
    fig, ax = _figure(width, height, title)
    if len(points) > 1:
        ax.plot([x for x, _ in points], [y for _, y in points], color=colour, linewidth=2)
    tips = {}
    if len(points) <= 60:
        for x, y in points:
            gid = _gid(title, x, y)
            ax.plot([x], [y], "o", color=colour, markersize=5, gid=gid)
            tips[gid] = f"{x:g}: {y:.4g}"
    if all(float(x).is_integer() for x, _ in points):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(axis="y", color="#e5e7eb")
    fig.tight_layout()
    return _inline_svg(fig, title or "line chart", tips)


@_styled
def scatter_svg(points: Sequence[Mapping[str, Any]], *, x_label: str, y_label: str, title: str = "",
                log_x: bool = False, width: int = 640, height: int = 380) -> str:
    """Points {'x', 'y', 'label', 'kind'} (kind picks the colour from MARKERS; target and retain are squares);
    non-finite points and, with `log_x`, non-positive x are left out. Each point is tagged with its label
    and carries it as a tooltip."""
    kept = [(x, y, str(p.get("label", "")), str(p.get("kind", "run"))) for p in points
            for x, y in [(finite_number(p.get("x")), finite_number(p.get("y")))]
            if x is not None and y is not None and not (log_x and x <= 0)]
    if not kept:
        return _no_data(width, height, title)
    fig, ax = _figure(width, height, title)
    tips = {}
    for x, y, label, kind in kept:
        gid = _gid(title, label, x, y)
        ax.plot([x], [y], "s" if kind in ("target", "retain") else "o", color=MARKERS.get(kind, MARKERS["run"]),
                markersize=7, gid=gid)
        ax.annotate(label, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8)
        tips[gid] = label
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(color="#e5e7eb")
    fig.tight_layout()
    return _inline_svg(fig, title or "scatter", tips)
