"""The lm-evaluation-harness bridge: local tasks over data in the published layouts give the harness's accuracy, and
it equals our own multiple-choice accuracy on the same questions and prompt."""

from __future__ import annotations

import csv
import json

import pytest

from unlearn.errors import ConfigError, UnlearnError

pytest.importorskip("lm_eval")

from unlearn.benchmarks.lm_eval_bridge import run_lm_eval  # noqa: E402
from unlearn.metrics.mcq import MCQuestion, mcq_accuracy, mmlu_prompt, option_logprobs  # noqa: E402

QUESTIONS = [MCQuestion(f"Which is item {i}?", (f"red {i}", f"blue {i}", f"green {i}", f"gold {i}"), i % 4)
             for i in range(6)]


def our_accuracy(model, tokenizer, questions) -> float:
    scores = option_logprobs(model, tokenizer, [mmlu_prompt(q) for q in questions], [4] * len(questions))
    return mcq_accuracy(scores, [q.answer for q in questions]).value


@pytest.fixture()
def wmdp_dir(tmp_path, monkeypatch):
    (tmp_path / "wmdp").mkdir()
    (tmp_path / "wmdp" / "wmdp_bio_200.jsonl").write_text("".join(
        json.dumps({"question": q.question, "choices": list(q.choices), "answer": q.answer}) + "\n" for q in QUESTIONS))
    monkeypatch.setenv("UNLEARN_WMDP_DIR", str(tmp_path / "wmdp"))
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path / "home"))
    return tmp_path / "wmdp"


def test_local_wmdp_task_gives_our_mcq_accuracy(tiny_model, tokenizer, wmdp_dir):
    results = run_lm_eval(tiny_model.eval(), tokenizer, ["wmdp_bio_local"], batch_size=4)
    assert results["wmdp_bio_local"]["n"] == len(QUESTIONS)
    assert results["wmdp_bio_local"]["acc"] == pytest.approx(our_accuracy(tiny_model, tokenizer, QUESTIONS))


def test_local_mmlu_task_reads_the_published_csv(tiny_model, tokenizer, tmp_path, monkeypatch):
    (tmp_path / "mmlu" / "test").mkdir(parents=True)
    with (tmp_path / "mmlu" / "test" / "toy_subject_test.csv").open("w", newline="") as f:
        csv.writer(f).writerows([[q.question, *q.choices, "ABCD"[q.answer]] for q in QUESTIONS])
    monkeypatch.setenv("UNLEARN_MMLU_DIR", str(tmp_path / "mmlu"))
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path / "home"))
    results = run_lm_eval(tiny_model.eval(), tokenizer, ["mmlu_toy_subject_local"], batch_size=4, limit=4)
    assert results["mmlu_toy_subject_local"]["n"] == 4
    assert results["mmlu_toy_subject_local"]["acc"] == pytest.approx(our_accuracy(tiny_model, tokenizer, QUESTIONS[:4]))


def test_bad_tasks_are_clear_errors(tiny_model, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_WMDP_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="WMDP-bio data not found"):
        run_lm_eval(tiny_model, tokenizer, ["wmdp_bio_local"])
    with pytest.raises(ConfigError, match="at least one task"):
        run_lm_eval(tiny_model, tokenizer, [])
    with pytest.raises(UnlearnError, match="lm-evaluation-harness failed"):
        run_lm_eval(tiny_model, tokenizer, ["no_such_task_anywhere"])


def test_cli_eval_writes_lm_eval_results(model_dir, wmdp_dir, tmp_path, capsys):
    from unlearn.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval", str(model_dir), "--lm-eval", "wmdp_bio_local", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record["lm_eval"]) == {"wmdp_bio_local"} and 0.0 <= record["lm_eval"]["wmdp_bio_local"]["acc"] <= 1.0
    assert "lm-eval wmdp_bio_local: acc" in capsys.readouterr().out
    assert main(["eval", str(model_dir)]) == 2  # neither --request nor --lm-eval
