"""docs/results.md is what benchmarks/results_page.py makes of the measured rows, and its bar is applied right."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("results_page", ROOT / "benchmarks" / "results_page.py")
results_page = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_page)


def demo_row(method: str, failed: list[str], likelihood: float, settings: dict | None = None) -> dict:
    values = {"forget": 0.0, "forget_paraphrase": 0.0, "neighbour": 0.9, "general": 0.8, "likelihood_top1": 0.2,
              "likelihood_rank": 5.0}
    return {"method": method, "settings": settings or {"lr": 1e-4}, "failed_checks": failed, "forget": 0.0,
            "paraphrase": 0.0, "neighbour": 0.9, "general": 0.8, "likelihood_top1": likelihood, "likelihood_rank": 5.0,
            "unlearn_s": 10.0, "reference": {"deployed": values, "retain": values}}


def audit_row(method: str, worst: float, settings: dict | None = None) -> dict:
    return {"method": method, "settings": settings or {"lr": 1e-4}, "worst": worst, "worst_attack": "relearn",
            "likelihood_relearned": {"unlearned held_out@10": 0.3, "retain held_out@10": 0.05}}


def test_results_page_is_up_to_date():
    text = results_page.page(results_page.load("demo_methods.json"), results_page.load("audit_demo.json"))
    assert (ROOT / "docs" / "results.md").read_text() == text, "run: python benchmarks/results_page.py"


def test_the_bar_needs_every_check_and_an_audit_within_it():
    passing = demo_row("a", [], 0.1)
    assert results_page.passes_bar(passing, audit_row("a", 0.05))
    assert not results_page.passes_bar(passing, None)  # not audited
    assert not results_page.passes_bar(passing, audit_row("a", 0.5))  # relapses
    assert not results_page.passes_bar(demo_row("b", ["forgotten by likelihood"], 0.6), audit_row("b", 0.0))


def test_an_audit_counts_only_at_the_same_settings_and_passing_rows_come_first():
    rows = [demo_row("hides", ["forgotten by likelihood"], 0.6), demo_row("forgets", [], 0.2),
            demo_row("other", [], 0.15, {"lr": 2e-5})]
    audits = [audit_row("forgets", 0.0), audit_row("other", 0.0, {"lr": 1e-3})]
    assert results_page.audit_for(rows[2], audits) is None
    text = results_page.page(rows, audits)
    table = [line for line in text.splitlines() if line.startswith("| ") and "model*" not in line][1:]
    assert [line.split(" | ")[0] for line in table] == ["| **forgets**", "| other", "| hides"]
    assert "0.30 (0.05)" in table[0] and "no audit row" in table[1]
    assert "Methods measured: 3" in text
    assert results_page.unmeasured(rows, ["forgets", "hides", "other", "new"]) == ["new"]
