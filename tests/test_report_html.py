"""The HTML report: renders complete and partial reports, escapes data, stays self-contained."""

from __future__ import annotations

import json
import math
import re

from unlearn.report import render_html, write_reports
from unlearn.report.charts import bar_chart_svg, line_chart_svg, scatter_svg

ROLES = ["original", "deployed", "unlearned", "retain"]
ACCURACY = {
    "original": {"forget": 0.0, "forget_paraphrase": 0.0, "neighbour": 0.1, "general": 0.62},
    "deployed": {"forget": 1.0, "forget_paraphrase": 0.875, "neighbour": 0.95, "general": 0.6},
    "unlearned": {"forget": 0.125, "forget_paraphrase": 0.125, "neighbour": 0.9, "general": 0.58},
    "retain": {"forget": 0.0, "forget_paraphrase": 0.0, "neighbour": 0.93, "general": 0.61},
}
FLUENCY = {
    "repetition": 0.02,
    "entropy": 0.9,
    "empty_rate": 0.0,
    "passed": True,
    "max_repetition": 0.35,
    "max_entropy": 3.5,
}


def _examples(role: str, group: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        knows = ACCURACY[role][group] > 0.5
        generation = f"Maren lives in Tromsø ({i})" if knows else "I am not sure about that."
        if role == "unlearned" and i == 0:
            generation = "<script>alert(1)</script> " + "very long answer " * 30
        out.append(
            {
                "question": f"Where does Maren Solberg live? #{i}"
                if group == "forget"
                else f"Neighbour q {i}?",
                "answer": "Tromsø" if group == "forget" else f"answer {i}",
                "generation": generation,
                "correct": knows,
                "rouge_l_recall": 1.0 if knows else 0.0,
            }
        )
    return out


def sample_report() -> dict:
    evaluations = {}
    for role in ROLES:
        groups = {}
        for group, acc in ACCURACY[role].items():
            n = 8 if group.startswith("forget") else 40
            groups[group] = {
                "n": n,
                "accuracy": acc,
                "rouge_l_recall": min(1.0, acc + 0.05),
                "fluency": dict(FLUENCY),
            }
            if group in ("forget", "neighbour"):
                groups[group]["examples"] = _examples(role, group, 8)
        evaluations[role] = {
            "groups": groups,
            "answer_logprob": {"forget": -0.12 if role == "deployed" else -3.4, "retain": -0.3},
            "fluency": dict(FLUENCY),
        }
    return {
        "schema": "unlearn.report/1",
        "kind": "demo",
        "created": "2026-11-24T05:00:00Z",
        "title": "Forget a person: Maren Solberg",
        "request": {
            "id": "forget-maren",
            "target": "Maren Solberg",
            "kind": "privacy",
            "hash": "ab12cd34ef56ab12cd34ef56",
            "forget_qa": 8,
            "forget_texts": 0,
            "retain_qa": 40,
            "retain_texts": 0,
            "probes": {"forget": 8, "neighbour": 40, "general": 60},
        },
        "method": {"name": "npo", "beta": 0.1, "retain_weight": 1.0},
        "model": {"name": "default", "fingerprint": "llama:134515008"},
        "roles": ROLES,
        "evaluations": evaluations,
        "checks": [
            {
                "name": "forget accuracy <= retain + 0.1",
                "passed": True,
                "value": 0.125,
                "threshold": 0.225,
                "description": "The unlearned model answers forget probes no better than the retain model.",
            },
            {"name": "neighbour accuracy drop <= 0.1", "passed": True, "value": 0.05, "threshold": 0.1},
            {"name": "fluency", "passed": True, "value": 0.02, "threshold": 0.35},
        ],
        "verdict": "pass",
        "training": {
            "steps": 40,
            "seconds": 52.3,
            "stopped_early": False,
            "history": [
                {"step": s, "loss": 2.3 * math.exp(-s / 15), "lr": 1e-5, "grad_norm": 3.1}
                for s in range(1, 41)
            ],
        },
        "timings": {
            "teach_deployed_s": 100.0,
            "teach_retain_s": 90.0,
            "unlearn_s": 52.3,
            "eval_s": 30.0,
            "total_s": 300.0,
        },
        "output_model": "/tmp/out/model",
        "notes": ["Probes were generated greedily.", "a <b>note</b> & more"],
    }


def test_full_report_renders() -> None:
    page = render_html(sample_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "Maren Solberg" in page
    for role in ROLES:
        assert role in page
    assert "<svg" in page
    assert "Probe accuracy by model" in page
    assert "PASS" in page
    assert "forget accuracy &lt;= retain + 0.1" in page
    assert "0.125" in page and "0.225" in page
    assert "Training loss" in page
    assert "5 min 00 s" in page  # total timing
    assert "/tmp/out/model" in page
    assert "a &lt;b&gt;note&lt;/b&gt; &amp; more" in page
    # Self-contained: no URLs of any kind, no scripts, no external resources.
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "section-error" not in page.split("</style>", 1)[1]


def test_group_order_and_failing_verdict() -> None:
    report = sample_report()
    report["verdict"] = "fail"
    report["checks"][0]["passed"] = False
    # An extra group is listed after the canonical ones even when it comes first in the dict.
    for evaluation in report["evaluations"].values():
        evaluation["groups"] = {"zzz_extra": {"accuracy": 0.5}, **evaluation["groups"]}
    page = render_html(report)
    assert "FAIL" in page
    chart = page[page.index("<svg") : page.index("</svg>")]
    positions = [chart.index(f">{g}</text>") for g in ("forget", "forget_paraphrase", "neighbour", "general")]
    assert positions == sorted(positions)
    assert chart.index(">zzz_extra</text>") > positions[-1]


def test_generations_are_escaped_and_truncated() -> None:
    page = render_html(sample_report())
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "…" in page


def test_minimal_report_renders() -> None:
    report = {
        "schema": "unlearn.report/1",
        "kind": "run",
        "request": {"id": "forget-x", "target": "X"},
        "evaluations": {},
    }
    page = render_html(report)
    assert "forget-x" in page and "X" in page
    assert "NO VERDICT" in page
    assert "section-error" not in page.split("</style>", 1)[1]


def test_odd_shapes_do_not_crash() -> None:
    for report in (
        {},
        {"evaluations": None, "roles": None, "checks": None, "training": None, "notes": "one note"},
        {"evaluations": {"deployed": {"groups": {"forget": {"examples": [{"generation": None}]}}}}},
        {"training": {"history": []}},
        {"training": {"history": [{"step": 1, "loss": 2.0}]}},
        {"roles": ["deployed"], "evaluations": {"deployed": {}}, "checks": [{"passed": None}, "junk"]},
    ):
        page = render_html(report)
        assert page.startswith("<!DOCTYPE html>")
        assert "section-error" not in page.split("</style>", 1)[1]


def test_missing_accuracy_shows_na() -> None:
    report = sample_report()
    report["evaluations"]["retain"]["groups"]["forget"]["accuracy"] = float("nan")
    report["evaluations"]["original"]["groups"]["general"]["accuracy"] = None
    page = render_html(report)
    assert "n/a" in page
    assert "nan" not in page.lower().replace("nanny", "")

    svg = bar_chart_svg(["a", "b"], {"m": [None, float("nan")], "n": [0.5, 1.0]})
    assert svg.count(">n/a<") == 2
    assert re.findall(r"<title>([^<]*)</title>", svg)[1:] == ["n · a: 0.500", "n · b: 1.000"]  # one tooltip per bar
    assert ">0.500<" in svg and ">1.000<" in svg and ">m<" in svg and ">n<" in svg  # value labels, legend
    assert "http" not in svg and "<?xml" not in svg and "<style" not in svg and svg.startswith("<svg")


def test_line_chart_edge_cases() -> None:
    assert "no data" in line_chart_svg([], [])
    one = line_chart_svg([1], [2.0], title="one")
    assert re.findall(r"<title>([^<]*)</title>", one) == ["one", "1: 2"]
    many = line_chart_svg([1, 2, 3], [3.0, float("nan"), 1.0], title="many")
    assert re.findall(r"<title>([^<]*)</title>", many) == ["many", "1: 3", "3: 1"]  # the NaN point is skipped


def test_scatter_marks_points_and_skips_what_a_log_axis_cannot_show() -> None:
    points = [{"x": 0.5, "y": 0.3, "label": "target", "kind": "target"}, {"x": 0.0, "y": 0.2, "label": "zero"},
              {"x": float("nan"), "y": 0.1, "label": "nan"}, {"x": 1e-3, "y": 0.25, "label": "npo", "kind": "best"}]
    svg = scatter_svg(points, x_label="forget quality", y_label="utility", title="t", log_x=True)
    assert re.findall(r"<title>([^<]*)</title>", svg) == ["t", "target", "npo"]
    assert ">zero<" not in svg and ">forget quality<" in svg and "http" not in svg
    assert "no data" in scatter_svg([], x_label="x", y_label="y")
    assert scatter_svg(points, x_label="x", y_label="y", title="t") == scatter_svg(points, x_label="x", y_label="y",
                                                                                   title="t")  # deterministic


def test_write_reports_round_trip(tmp_path) -> None:
    report = sample_report()
    json_path, html_path = write_reports(report, tmp_path / "out")
    assert json_path == tmp_path / "out" / "report.json"
    assert html_path == tmp_path / "out" / "report.html"
    assert json.loads(json_path.read_text(encoding="utf-8")) == report
    assert html_path.read_text(encoding="utf-8") == render_html(report)
    assert not [p for p in (tmp_path / "out").iterdir() if re.search(r"\.tmp$", p.name)]


