"""Human-readable reports of unlearning runs: a self-contained HTML page next to the JSON."""

from .html import bar_chart_svg, line_chart_svg, render_html, write_reports

__all__ = ["bar_chart_svg", "line_chart_svg", "render_html", "write_reports"]
