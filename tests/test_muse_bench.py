"""`unlearn bench muse`: the published-layout loader, the mini setting, and prepare / run / sweep end to end on a
tiny model and a synthetic MUSE-News directory."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from unlearn.benchmarks import muse_bench as mb
from unlearn.benchmarks.muse_data import answer_passage, load_muse, mini_setting
from unlearn.cli import main
from unlearn.config import TrainConfig, to_dict
from unlearn.errors import ConfigError
from unlearn.models.loading import load_model

FAST_RUN = ["train.max_steps=2", "train.batch_size=2"]
PEOPLE = ["Ada", "Bo", "Cy", "Di", "Ed", "Flo"]
UNANSWERABLE = {"question": "Where did Zed land?", "answer": "Moon"}  # about a text that is not in the corpus


def article(name: str, town: str, year: int) -> str:
    return (f"News of the day.\n\n{name} opened a bakery in {town} in {year}. "
            f"The bakery of {name} sells bread.\n\nMore news follows here.")


def write_muse(root: Path) -> Path:
    """A directory in the published MUSE-News layout; every answer occurs in its corpus."""
    forget = [article(p, f"Town{i}", 1990 + i) for i, p in enumerate(PEOPLE[:3])]
    retain = [article(p, f"Ville{i}", 2000 + i) for i, p in enumerate(PEOPLE[3:])]
    holdout = [article(p, f"Burg{i}", 2010 + i) for i, p in enumerate(["Gus", "Hal", "Ivy"])]
    files = {
        "raw/forget.json": forget + [""],  # the published raw corpus holds a blank text too
        "verbmem/forget.json": [{"prompt": t[:40], "gt": t[40:70]} for t in forget],
        "knowmem/forget_qa.json": [{"question": f"Where did {p} open a bakery?", "answer": f"Town{i}"}
                                   for i, p in enumerate(PEOPLE[:3])] + [UNANSWERABLE],
        "knowmem/forget_qa_icl.json": [{"question": "What is bread?", "answer": "food"}],
        "knowmem/retain2_qa.json": [{"question": f"Where did {p} open a bakery?", "answer": f"Ville{i}"}
                                    for i, p in enumerate(PEOPLE[3:])] + [UNANSWERABLE],
        "knowmem/retain2_qa_icl.json": [{"question": "What is milk?", "answer": "a drink"}],
        "privleak/forget.json": forget, "privleak/retain2.json": retain, "privleak/holdout.json": holdout,
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(json.dumps(data))
    return root


@pytest.fixture(scope="module")
def muse_dir(tmp_path_factory) -> Path:
    return write_muse(tmp_path_factory.mktemp("muse"))


@pytest.fixture()
def spec(base_dir, muse_dir, home, monkeypatch) -> mb.MuseBenchSpec:
    monkeypatch.setenv("UNLEARN_HOME", str(home))
    return mb.MuseBenchSpec(base_model=str(base_dir), source=str(muse_dir), verbmem_items=2, knowmem_items=2,
                            privleak_items=3, prompt_tokens=20, continuation_tokens=6, privleak_tokens=40,
                            teach=TrainConfig(lr=1e-3, max_steps=3, batch_size=8, max_length=64), eval_batch_size=8)


def test_answer_passage_takes_the_occurrence_the_question_is_about():
    texts = ["Prices rose 10% in shops.\n\nOther news.", "Nurses said 10% was a red line for nurses' pay."]
    assert answer_passage(texts, "10%", "What rise in pay did nurses call a red line?") == texts[1]
    assert answer_passage(texts, "10%", "What did the minister say about trains?") is None  # another topic
    assert answer_passage(texts, "25%", "What rise in pay did nurses ask?") is None


def test_answer_passage_starts_at_a_paragraph_within_reach():
    text = "A" * 700 + "\n\nThe answer is 42 here. " + "B" * 400
    passage = answer_passage([text], "42", "What is the answer here?")
    assert passage.startswith("The answer is 42") and passage.endswith("B" * 100)  # cut 300 chars after


def test_mini_setting_builds_corpora_from_the_evaluated_texts(muse_dir, tokenizer):
    mini = mini_setting(load_muse(muse_dir), tokenizer, verbmem_items=2, knowmem_items=2, privleak_items=2,
                        prompt_tokens=10, continuation_tokens=5, privleak_tokens=30)
    assert [len(p) for p, _ in mini.verbmem] == [10, 10] and [len(c) for _, c in mini.verbmem] == [5, 5]
    assert mini.verbmem[0][0] + mini.verbmem[0][1] in mini.forget_texts  # the excerpt asked about is taught
    assert any("Town0" in t for t in mini.forget_texts) and not any("Town" in t for t in mini.retain_texts)
    assert any("Ville0" in t for t in mini.retain_texts) and not any("Ville" in t for t in mini.forget_texts)
    assert all(t.startswith("News of the day.") and len(t) < 40 for t in mini.privleak_forget + mini.privleak_holdout)
    assert not set(mini.privleak_holdout) & set(mini.forget_texts + mini.retain_texts)
    assert mini.sizes["knowmem_forget"] == 2 and mini.sizes["forget_texts"] == len(mini.forget_texts)


@pytest.mark.parametrize("fields, message", [
    ({"verbmem_items": 9}, "only 3"),
    ({"knowmem_items": 4}, "only 3 forget and 3 retain questions have their answer in the corpus"),
    ({"knowmem_items": 5}, "only 4"),
    ({"privleak_items": 0}, "at least 1"),
])
def test_mini_setting_refuses_impossible_sizes(muse_dir, tokenizer, fields, message):
    with pytest.raises(ConfigError, match=message):
        mini_setting(load_muse(muse_dir), tokenizer, **({"verbmem_items": 2, "knowmem_items": 2, "privleak_items": 2}
                                                         | fields))


@pytest.mark.parametrize("relative, content, message", [
    ("knowmem/retain2_qa.json", json.dumps([{"question": "q"}]), "retain2_qa.json: item 0 needs"),
    ("privleak/holdout.json", "{not json", "holdout.json is not valid JSON"),
    ("privleak/retain2.json", json.dumps(["", " "]), "retain2.json holds only blank texts"),
    ("raw/forget.json", json.dumps({"a": 1}), "forget.json must be a non-empty JSON list"),
    ("verbmem/forget.json", None, "verbmem/forget.json not found"),
])
def test_loader_names_the_broken_file(tmp_path, relative, content, message):
    root = write_muse(tmp_path / "m")
    if content is None:
        (root / relative).unlink()
    else:
        (root / relative).write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_muse(root)


def test_loader_needs_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="MUSE directory not found"):
        load_muse(tmp_path / "nowhere")


def test_prepare_run_and_sweep(spec, tmp_path, monkeypatch):
    prepared = mb.prepare(spec, progress=False)
    assert (prepared.target_dir / "config.json").is_file() and (prepared.retain_dir / "config.json").is_file()
    summary = prepared.target_eval.summary
    assert set(summary) == set(mb.KEYS)
    assert prepared.retain_eval.summary["privleak"] == pytest.approx(0.0)
    assert 0.0 <= summary["verbmem_f"] <= 1.0 and 0.0 <= summary["mia_min_k"] <= 1.0
    assert prepared.target_eval.metrics["knowmem_r"]["higher_is_better"] is True
    assert prepared.target_eval.metrics["knowmem_f"]["higher_is_better"] is False

    monkeypatch.setattr(mb, "teach", lambda *a, **k: pytest.fail("prepare must be cached"))
    again = mb.prepare(spec, progress=False)
    assert again.target_eval.summary == summary

    run = mb.run_method(spec, "grad_ascent", FAST_RUN, progress=False, prepared=prepared)
    assert run["status"] == "ok" and run["training"]["steps"] == 2 and set(run["summary"]) == set(mb.KEYS)

    out = tmp_path / "sweep"
    result = mb.sweep(spec, ["grad_ascent", "idk_dpo"], ["train.max_steps=1,2"], out, progress=False,
                      echo=lambda _: None)
    by_label = {r["label"]: r for r in result["runs"]}
    assert by_label["grad_ascent max_steps=2"]["status"] == "ok"
    assert by_label["idk_dpo max_steps=1"]["status"] == "failed"  # needs QA forget data: recorded, others go on
    assert "QA forget data" in by_label["idk_dpo max_steps=1"]["error"]
    table = mb.sweep_table(result)
    assert "retain (gold)" in table and "failed" in table
    monkeypatch.setattr(mb, "run_method", lambda *a, **k: pytest.fail("finished runs are reused"))
    assert mb.sweep(spec, ["grad_ascent"], ["train.max_steps=1,2"], out, progress=False, echo=lambda _: None)["runs"]


def test_retain_evaluation_of_other_texts_is_refused(spec, tokenizer):
    prepared = mb.prepare(spec, progress=False)
    other = replace(spec, privleak_items=2)
    model, tok = load_model(str(prepared.target_dir))
    with pytest.raises(ConfigError, match="other MUSE texts"):
        mb.evaluate_muse(model, tok, other.mini(tok), prepared.retain_eval, progress=False)


@pytest.mark.parametrize("extra, message", [
    (["run", "--method", "nosuch"], "nosuch"),
    (["prepare", "--spec", "knowmem_itemz=3"], "knowmem_items"),
    (["prepare", "--data", "/nowhere/muse"], "MUSE directory not found"),
])
def test_cli_bad_input_is_one_line(extra, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path))
    assert main(["bench", "muse", *extra, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def _spec_overrides(spec: mb.MuseBenchSpec) -> list[str]:
    """--spec options that turn the CLI's default recipe into `spec` (so the CLI reuses its prepared models)."""
    def leaves(data: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in data.items():
            out |= leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
        return out

    ours, default = leaves(to_dict(spec)), leaves(to_dict(mb.MuseBenchSpec()))
    return [x for k, v in ours.items() if v != default[k] and k not in ("base_model", "source")
            for x in ("--spec", f"{k}={json.dumps(v)}")]


def test_cli_run_prints_the_table(spec, tmp_path, capsys, monkeypatch):
    mb.prepare(spec, progress=False)
    monkeypatch.setattr(mb, "teach", lambda *a, **k: pytest.fail("the CLI must find the prepared models"))
    args = ["bench", "muse", "run", "--model", spec.base_model, "--data", spec.source, "--quiet",
            "--method", "grad_ascent", "--out", str(tmp_path / "out"), *_spec_overrides(spec)]
    args += [x for o in FAST_RUN for x in ("--set", o)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "VerbMem_f" in out and "retain (gold)" in out and "grad_ascent" in out
    assert json.loads((tmp_path / "out" / "result.json").read_text())["status"] == "ok"
