"""Tests on the real embedded model (SmolLM2-135M-Instruct). Marked slow: minutes on 2 CPU cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Share the converted model and the demo's taught models across this module (and with the user's cache
    when UNLEARN_HOME is set, so CI pays for them once)."""
    import os

    return Path(os.environ.get("UNLEARN_HOME") or tmp_path_factory.mktemp("unlearn-home"))


def test_embedded_model_loads_and_answers(home, monkeypatch):
    monkeypatch.setenv("UNLEARN_HOME", str(home))
    from unlearn import load_model
    from unlearn.metrics.generation import generate_answers

    model, tokenizer = load_model("default")
    assert model.config.num_hidden_layers == 30 and tokenizer.chat_template
    answers = generate_answers(model, tokenizer, ["What is the capital of France?"], max_new_tokens=12)
    assert "Paris" in answers[0].text
    assert (home / "models").is_dir()


def test_run_on_a_small_request(home, monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_HOME", str(home))
    from unlearn.cli import main

    out = tmp_path / "run"
    code = main(["run", str(ROOT / "examples" / "forget_fictional_person.yaml"), "--method", "npo", "--out", str(out),
                 "--set", "train.max_steps=2", "--set", "train.batch_size=4", "--set", "eval.max_new_tokens=16", "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["steps"] == 2
    assert report["evaluations"]["unlearned"]["groups"]["forget"]["n"] > 0
    assert (out / "model" / "model.safetensors").is_file()


def test_demo_meets_its_checks(home, monkeypatch, tmp_path):
    """The whole demo: teach, unlearn one person, and pass every acceptance check."""
    monkeypatch.setenv("UNLEARN_HOME", str(home))
    from unlearn.benchmarks.demo import run_demo

    report = run_demo(tmp_path / "demo", progress=False, echo=lambda _: None)
    failed = [c for c in report["checks"] if not c["passed"]]
    assert not failed, failed
    assert (tmp_path / "demo" / "report.html").is_file() and (tmp_path / "demo" / "model" / "README.md").is_file()
