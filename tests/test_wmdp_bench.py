"""`unlearn bench wmdp`: checked loading of the questions and corpora, the evaluation (WMDP-bio and MMLU accuracy,
equal to our MCQ accuracy), and eval / run end to end on a tiny model."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch

from unlearn.benchmarks import wmdp as wb
from unlearn.cli import main
from unlearn.errors import ConfigError
from unlearn.metrics.mcq import MCQuestion, mcq_accuracy, mmlu_prompt, option_logprobs

QUESTIONS = [MCQuestion(f"Which agent is number {i}?", (f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"), i % 4)
             for i in range(6)]
FAST_RUN = ["train.max_steps=2", "train.batch_size=2", "train.max_length=48"]


def write_questions(path: Path, questions=QUESTIONS) -> Path:
    path.write_text("".join(json.dumps({"question": q.question, "choices": list(q.choices), "answer": q.answer}) + "\n"
                            for q in questions))
    return path


@pytest.fixture()
def data(tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path / "home"))
    (tmp_path / "wmdp").mkdir()
    write_questions(tmp_path / "wmdp" / "wmdp_bio_200.jsonl")
    (tmp_path / "mmlu" / "test").mkdir(parents=True)
    for subject in ("virology", "anatomy"):
        with (tmp_path / "mmlu" / "test" / f"{subject}_test.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([[f"{subject} question {i}?", "w", "x", "y", "z", "ABCD"[i % 4]]
                                          for i in range(3)])
    corpus = tmp_path / "forget.jsonl"
    corpus.write_text("".join(json.dumps({"title": f"t{i}", "text": f"Agent {i} spreads by contact."}) + "\n"
                              for i in range(4)) + json.dumps({"text": "  "}) + "\n")
    return {"wmdp": str(tmp_path / "wmdp"), "mmlu": str(tmp_path / "mmlu"), "corpus": corpus, "root": tmp_path}


def spec_of(data: dict, **fields) -> wb.WmdpBenchSpec:
    return wb.WmdpBenchSpec(wmdp=data["wmdp"], mmlu_subjects=["virology", "anatomy"], mmlu_source=data["mmlu"],
                            batch_size=4, **fields)


def test_evaluation_is_our_mcq_accuracy_and_pools_mmlu(tiny_model, tokenizer, data):
    result = wb.evaluate_wmdp(tiny_model, tokenizer, spec_of(data), progress=False)
    prompts = [mmlu_prompt(q, "biology") for q in QUESTIONS]
    expected = mcq_accuracy(option_logprobs(tiny_model, tokenizer, prompts, [4] * 6, 4), [q.answer for q in QUESTIONS])
    assert result.summary["wmdp_bio"] == pytest.approx(expected.value)
    pooled = result.per_example("mmlu_virology") + result.per_example("mmlu_anatomy")
    assert result.summary["mmlu"] == pytest.approx(sum(pooled) / len(pooled))
    assert result.details["sizes"] == {"wmdp_bio": 6, "mmlu_virology": 3, "mmlu_anatomy": 3}
    limited = wb.evaluate_wmdp(tiny_model, tokenizer, spec_of(data, wmdp_limit=2, mmlu_limit=1), progress=False)
    assert limited.details["sizes"] == {"wmdp_bio": 2, "mmlu_virology": 1, "mmlu_anatomy": 1}


def test_evaluation_is_cached_per_weights(tiny_model, tokenizer, data, monkeypatch):
    spec = spec_of(data)
    first = wb.evaluated_once(tiny_model, tokenizer, spec, progress=False)
    real = wb.evaluate_wmdp
    monkeypatch.setattr(wb, "evaluate_wmdp", lambda *a, **k: pytest.fail("the same weights are evaluated once"))
    assert wb.evaluated_once(tiny_model, tokenizer, spec, progress=False).summary == first.summary
    other = copy.deepcopy(tiny_model)  # same architecture, one weight changed: evaluated anew
    with torch.no_grad():
        next(other.parameters()).view(-1)[0] += 1.0
    calls = []
    monkeypatch.setattr(wb, "evaluate_wmdp", lambda *a, **k: calls.append(1) or real(*a, **k))
    wb.evaluated_once(other, tokenizer, spec, progress=False)
    assert calls == [1]


@pytest.mark.parametrize("line, message", [
    ('{"question": "q", "choices": ["a", "b"], "answer": 2}', "index of a choice"),
    ('{"question": "q", "choices": "ab", "answer": 0}', "'choices'"),
    ('{"question": "q", "choices": ["a", "b"], "answer": true}', "index of a choice"),
    ('{not json', "not valid JSON"),
    ('["q"]', "JSON object"),
])
def test_bad_question_files_name_the_line(tmp_path, line, message):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "fine", "choices": ["a", "b"], "answer": 0}) + "\n" + line + "\n")
    with pytest.raises(ConfigError, match=f"q.jsonl:2: .*{message}|q.jsonl:2: {message}"):
        wb.load_wmdp(path)


def test_corpus_loading(data, tmp_path):
    assert wb.load_corpus(data["corpus"]) == [f"Agent {i} spreads by contact." for i in range(4)]  # blank left out
    assert len(wb.load_corpus(data["corpus"], max_texts=2)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"abstract": "no text field"}) + "\n")
    with pytest.raises(ConfigError, match="needs a 'text' field"):
        wb.load_corpus(bad)
    with pytest.raises(ConfigError, match="not found"):
        wb.load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="WMDP-bio data not found"):
        wb.wmdp_file(tmp_path / "nowhere")


def test_run_evaluates_before_and_after(model_dir, data):
    forget = wb.load_corpus(data["corpus"])
    result = wb.run_method(spec_of(data), str(model_dir), "grad_ascent", forget, overrides=FAST_RUN, progress=False)
    assert result["status"] == "ok" and result["training"]["steps"] == 2
    assert set(result["before"]) == set(result["summary"]) == {"wmdp_bio", "mmlu", "mmlu_virology", "mmlu_anatomy"}
    assert result["corpus"] == {"forget_texts": 4, "retain_texts": 0}


def test_cli_run_prints_chance_before_and_after(model_dir, data, capsys):
    out = data["root"] / "out"
    args = ["bench", "wmdp", "run", "--model", str(model_dir), "--wmdp", data["wmdp"], "--quiet",
            "--spec", f"mmlu_source={data['mmlu']}", "--spec", "mmlu_subjects=[virology]",
            "--method", "grad_ascent", "--forget-corpus", str(data["corpus"]), "--out", str(out)]
    assert main(args + [x for o in FAST_RUN for x in ("--set", o)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("chance") and "0.250" in lines[1]
    assert lines[2].startswith(str(model_dir)) and lines[3].startswith("grad_ascent")
    assert json.loads((out / "result.json").read_text())["method"]["name"] == "grad_ascent"


@pytest.mark.parametrize("extra, message", [
    (["--wmdp", "/nowhere/wmdp"], "WMDP-bio data not found"),
    (["--spec", "mmlu_subjects=[no_such_subject]"], "no_such_subject"),
    (["--spec", "mmlu_subjects=[]"], "mmlu_subjects is empty"),
    (["--method", "nosuch", "--forget-corpus", "x.jsonl"], "nosuch"),
    (["--method", "npo", "--forget-corpus", "/nowhere.jsonl"], "not found"),
])
def test_cli_bad_input_is_one_line(extra, message, data, capsys):
    action = "run" if "--method" in extra else "eval"
    args = ["bench", "wmdp", action, "--quiet", "--wmdp", data["wmdp"], "--spec", f"mmlu_source={data['mmlu']}",
            "--spec", "mmlu_subjects=[virology]", *extra]  # the later option wins
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
