"""`unlearn bench tofu`: prepare / run / sweep end to end on a tiny model and a synthetic TOFU directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from tofu_fixtures import write_synthetic_tofu

from unlearn.benchmarks import tofu_bench as tb
from unlearn.benchmarks.sweeping import parse_grid
from unlearn.cli import main
from unlearn.config import TrainConfig
from unlearn.errors import ConfigError, TrainingDiverged

FAST_RUN = ["train.max_steps=2", "train.batch_size=2"]


@pytest.fixture(scope="module")
def tofu_dir(tmp_path_factory) -> Path:
    return write_synthetic_tofu(tmp_path_factory.mktemp("tofu"))


@pytest.fixture()
def spec(base_dir, tofu_dir, home, monkeypatch) -> tb.TofuBenchSpec:
    monkeypatch.setenv("UNLEARN_HOME", str(home))
    return tb.TofuBenchSpec(base_model=str(base_dir), authors=10, source=str(tofu_dir),
                            teach=TrainConfig(lr=1e-3, max_steps=3, batch_size=8, max_length=64), replay_weight=0.0,
                            eval_batch_size=32, max_new_tokens=4, general_rows=4)


@pytest.fixture()
def prepared(spec) -> tb.Prepared:
    return tb.prepare(spec, 10, progress=False)


def test_prepare_makes_and_evaluates_both_models(prepared):
    assert (prepared.target_dir / "config.json").is_file()
    assert prepared.retain_dir.name == "retain90"
    assert prepared.retain_eval.details["role"] == "retain" and prepared.target_eval.details["role"] == "target"
    # the target is compared with the retain model; the retain model with itself (the ideal values)
    assert 0.0 <= prepared.target_eval.summary["forget_quality"] <= 1.0
    assert prepared.retain_eval.summary["forget_quality"] == pytest.approx(1.0)
    assert prepared.retain_eval.summary["privleak"] == pytest.approx(0.0)
    info = prepared.info
    assert info["sizes"]["forget_authors"] == 1 and info["sizes"]["retain_authors"] == 9
    assert {"teach_target_s", "teach_retain_s", "eval_retain_s", "eval_target_s"} <= set(info["timings"])


def test_prepare_measures_the_ceiling_with_a_second_retain_model(prepared):
    ceiling = prepared.ceiling_eval
    assert ceiling is not None and ceiling.details["role"] == "ceiling"
    assert (prepared.directory / "retain90-seed1" / "config.json").is_file()
    # the same recipe with another seed is another model: its truth ratios differ from the reference's
    assert ceiling.details["forget_truth_ratios"] != prepared.retain_eval.details["forget_truth_ratios"]
    assert 0.0 <= prepared.ceiling() <= 1.0 and prepared.ceiling() == ceiling.summary["forget_quality"]
    labels = [label for label, _ in tb.reference_rows(prepared)]
    assert labels == ["target", "retain90 (gold)", "retain90, seed+1 (ceiling)"]


def test_prepare_is_cached(prepared, spec, monkeypatch):
    def no_teaching(*args, **kwargs):
        raise AssertionError("prepare taught a model again")

    monkeypatch.setattr(tb, "teach", no_teaching)
    monkeypatch.setattr(tb, "evaluate_tofu", no_teaching)
    again = tb.prepare(spec, 10, progress=False)
    assert again.target_eval == prepared.target_eval


def test_prepare_adds_unseen_forget_quality_to_evaluations_saved_without_it(prepared, spec, monkeypatch):
    path = prepared.directory / "eval-target-forget10.json"
    data = json.loads(path.read_text())
    value = data["summary"].pop("unseen_forget_quality")
    del data["metrics"]["unseen_forget_quality"], data["unseen_truth_ratios"]
    path.write_text(json.dumps(data))

    def no_teaching(*args, **kwargs):
        raise AssertionError("prepare taught or evaluated a model again")

    monkeypatch.setattr(tb, "teach", no_teaching)
    monkeypatch.setattr(tb, "evaluate_tofu", no_teaching)
    again = tb.prepare(spec, 10, progress=False)
    assert again.target_eval.summary["unseen_forget_quality"] == pytest.approx(value)
    assert json.loads(path.read_text())["summary"]["unseen_forget_quality"] == pytest.approx(value)
    assert len(again.target_eval.details["unseen_truth_ratios"]) == 100  # authors 0-4, never taught


def test_run_reports_the_standard_keys(prepared, spec):
    result = tb.run_method(spec, "grad_ascent", 10, FAST_RUN, progress=False)
    summary = result["summary"]
    for key, _ in tb.TABLE_COLUMNS:
        assert key in summary, key
    assert result["training"]["steps"] == 2
    assert result["method"]["name"] == "grad_ascent"
    table = tb.format_table(tb.reference_rows(prepared) + [("grad_ascent", summary)])
    assert table.splitlines()[1].startswith("target") and "retain90 (gold)" in table


def test_sweep_writes_json_and_html_and_resumes(prepared, spec, tmp_path, monkeypatch):
    real_run = tb.run_method

    def run_or_fail(spec, method, percent, overrides, progress, prepared=None):
        if method == "npo":
            raise TrainingDiverged("loss became nan at step 1")
        return real_run(spec, method, percent, overrides + FAST_RUN, progress, prepared=prepared)

    monkeypatch.setattr(tb, "run_method", run_or_fail)
    out = tmp_path / "sweep"
    result = tb.sweep(spec, ["grad_ascent", "npo"], ["train.lr=1e-5,1e-4"], out, progress=False, echo=lambda _: None)
    assert [r["label"] for r in result["runs"]] == ["grad_ascent lr=1e-5", "grad_ascent lr=1e-4", "npo lr=1e-5",
                                                     "npo lr=1e-4"]
    assert [r["status"] for r in result["runs"]] == ["ok", "ok", "failed", "failed"]
    assert "nan" in result["runs"][2]["error"]
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["target"] == prepared.table_row("target")
    assert saved["ceiling"] == prepared.table_row("ceiling")
    page = (out / "sweep.html").read_text()
    chart = page[page.index("<svg"):page.index("</svg>")]
    assert {"target", "retain90 (gold)"} <= set(re.findall(r"<title>([^<]*)</title>", chart))  # marked points
    assert "failed: loss became nan" in page
    assert "http" not in page.replace("https://", "") and "<script" not in page
    text = tb.sweep_table(result)
    assert text.count("failed") == 2 and "(ceiling)" in text
    ok = [r for r in result["runs"] if r["status"] == "ok"]
    assert saved["choice_without_retain"] == (tb.choice_without_retain(ok, 0.95 * saved["target"]["model_utility"])
                                              or {}).get("label")
    assert all(0.0 <= r["summary"]["unseen_forget_quality"] <= 1.0 for r in ok)

    monkeypatch.setattr(tb, "run_method", lambda *a, **k: pytest.fail("a finished run was run again"))
    again = tb.sweep(spec, ["grad_ascent", "npo"], ["train.lr=1e-5,1e-4"], out, progress=False, echo=lambda _: None)
    assert [r["status"] for r in again["runs"]] == ["ok", "ok", "failed", "failed"]
    # the same directory for another recipe is refused, not silently mixed
    other = tb.make_spec(["teach.epochs=2"], **{k: getattr(spec, k) for k in ("base_model", "authors", "source")})
    with pytest.raises(ConfigError, match="another benchmark setting"):
        tb.sweep(other, ["grad_ascent"], ["train.lr=1e-5"], out, progress=False, echo=lambda _: None)


def test_sweep_checks_every_method_before_any_work(spec, tmp_path):
    with pytest.raises(ConfigError, match="npoo"):
        tb.sweep(spec, ["npo", "npoo"], [], tmp_path / "s", progress=False)
    with pytest.raises(ConfigError, match="bet"):
        tb.sweep(spec, ["npo"], ["method.bet=0.1,0.2"], tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_parse_grid():
    assert parse_grid([]) == [[]]
    assert parse_grid(["train.lr=1e-5,2e-5", "train.epochs=5"]) == [
        ["train.lr=1e-5", "train.epochs=5"], ["train.lr=2e-5", "train.epochs=5"]]
    with pytest.raises(ConfigError, match="key=value1,value2"):
        parse_grid(["train.lr"])


def test_grid_keys_joined_by_plus_move_together():
    assert parse_grid(["method.seed+train.seed=0,1", "train.lr=x1,x3"]) == [
        ["method.seed=0", "train.seed=0", "train.lr=x1"], ["method.seed=0", "train.seed=0", "train.lr=x3"],
        ["method.seed=1", "train.seed=1", "train.lr=x1"], ["method.seed=1", "train.seed=1", "train.lr=x3"]]
    for bad in ("method.seed+=0,1", "+train.seed=0", "method.seed+train.seed="):
        with pytest.raises(ConfigError, match="move together"):
            parse_grid([bad])


def test_best_tradeoff_keeps_utility_first():
    def run(label, fq, mu, status="ok"):
        return {"label": label, "status": status, "summary": {"forget_quality": fq, "model_utility": mu}}

    runs = [run("a", 0.9, 0.30), run("b", 0.5, 0.46), run("c", 0.2, 0.50), run("d", 0.99, 0.5, "failed")]
    assert tb.best_tradeoff(runs, target_utility=0.5)["label"] == "b"  # a keeps only 60% of the utility
    assert tb.best_tradeoff(runs, target_utility=0.9) is None


def test_choice_without_retain_reads_only_unseen_forget_quality_and_utility():
    def run(label, unseen, mu, fq=0.0, status="ok"):
        return {"label": label, "status": status,
                "summary": {"forget_quality": fq, "unseen_forget_quality": unseen, "model_utility": mu}}

    runs = [run("a", 0.9, 0.28, fq=0.9), run("b", 0.6, 0.30), run("c", 0.2, 0.31, fq=0.8),
            run("d", 0.99, 0.5, status="failed"), run("e", float("nan"), 0.4)]
    assert tb.choice_without_retain(runs, min_utility=0.29)["label"] == "b"  # a loses utility; fq is not read
    assert tb.choice_without_retain(runs, min_utility=0.5) is None
    older = {"label": "f", "status": "ok", "summary": {"forget_quality": 0.5, "model_utility": 0.4}}
    assert tb.choice_without_retain([older], min_utility=0.1) is None  # evaluated before the metric existed

    result = {"runs": runs, "choice_without_retain": "b", "target": {"model_utility": 0.31},
              "ceiling": {"forget_quality": 0.9}}
    line = tb.choice_line(result)
    assert line.startswith("without a retain model the choice is b (FQ_unseen 0.600)")
    assert line.endswith("not met (forget quality 0.000, model utility 0.300)")
    assert "no choice" in tb.choice_line(result | {"choice_without_retain": None})


def test_forget_split_must_be_whole_authors():
    with pytest.raises(ConfigError, match="0.5 authors"):
        tb.check_percent(tb.TofuBenchSpec(authors=10), 5)
    tb.check_percent(tb.TofuBenchSpec(authors=20), 5)
    tb.check_percent(tb.TofuBenchSpec(authors=200), 1)


def test_spec_overrides_and_retain_eval_authors(tofu_dir):
    spec = tb.make_spec(["teach.epochs=3", "retain_eval_authors=2"], authors=10, source=str(tofu_dir))
    assert spec.teach.epochs == 3 and spec.retain_eval_authors == 2
    splits = tb.bench_splits(spec, 10)
    assert len(splits.retain_perturbed) == 40 and len(splits.retain) == 180
    assert tb.bench_dir(spec) != tb.bench_dir(tb.make_spec(authors=10, source=str(tofu_dir)))
    with pytest.raises(ConfigError, match="epochs"):
        tb.make_spec(["teach.epoch=3"])
    with pytest.raises(ConfigError, match="at least 1"):
        tb.bench_splits(tb.make_spec(["retain_eval_authors=0"], authors=10, source=str(tofu_dir)), 10)


def test_format_table_marks_failed_and_missing():
    table = tb.format_table([("x", {"forget_quality": 1e-5, "model_utility": float("nan")}), ("y", None)])
    assert "1.0e-05" in table and "n/a" in table and table.splitlines()[2].split() == ["y", "failed"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "forget05"], "1.5 authors"),
        (["--data", "/no/such/tofu"], "/no/such/tofu"),
    ],
)
def test_cli_bad_input_is_one_line(extra, message, capsys, tofu_dir, tmp_path):
    args = ["bench", "tofu", "run", "--method", "npo", "--out", str(tmp_path / "o")]
    code = main(args + (["--data", str(tofu_dir)] if "--data" not in extra else []) + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_run_prints_the_table(spec, prepared, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tb, "make_spec", lambda overrides, **kw: spec)  # the CLI builds the same (fast) spec
    out = tmp_path / "run"
    code = main(["bench", "tofu", "run", "--method", "grad_ascent", "--out", str(out), "--quiet",
                 *[a for o in FAST_RUN for a in ("--set", o)]])
    printed = capsys.readouterr().out
    assert code == 0
    assert "forget_quality" in printed and "retain90 (gold)" in printed and "grad_ascent" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "ok"
    assert tb.prepared_bar(prepared).verdict(result["summary"]) in printed.splitlines()


def test_a_relative_learning_rate_grid_scales_each_methods_own_rate():
    for method in ("npo", "undial", "rmu"):
        own = tb.bench_unlearn_config(method).train.lr
        assert tb.bench_unlearn_config(method, ["train.lr=x3"]).train.lr == pytest.approx(3 * own)
    assert tb.bench_unlearn_config("rmu").train.lr != tb.bench_unlearn_config("npo").train.lr


def test_a_method_whose_rate_means_something_else_gets_its_own_rate_on_tofu():
    """TOFU's 1e-5 is a rate for raw gradients: a method whose default rate is another scale (a normalised step's
    length, a steering loss) must name its TOFU rate, or the benchmark would run it at a meaningless one."""
    from unlearn.methods import METHODS

    for name in METHODS.names():
        own = tb.checked_method(name)[1].default_lr  # with its TOFU settings (a teacher, a base method)
        if own != pytest.approx(1e-5):
            assert tb.bench_unlearn_config(name).train.lr != pytest.approx(1e-5), name
    assert tb.bench_unlearn_config("mudman").train.lr == pytest.approx(0.1)


def test_the_bar_takes_half_the_ceiling_or_one_half_and_most_of_the_target_utility():
    target = {"forget_quality": 0.001, "model_utility": 0.40}
    low_ceiling = tb.TofuBar.of(target, {"forget_quality": 0.6, "model_utility": 0.3})
    assert (low_ceiling.forget_quality, low_ceiling.model_utility) == (0.3, 0.95 * 0.40)
    assert tb.TofuBar.of(target, {"forget_quality": 1.0, "model_utility": 0.3}).forget_quality == 0.5
    no_ceiling = tb.TofuBar.of(target, None)
    assert no_ceiling.forget_quality == 0.5 and "no ceiling prepared" in no_ceiling.verdict(target)
    assert low_ceiling.met_by({"forget_quality": 0.3, "model_utility": 0.38})
    assert not low_ceiling.met_by({"forget_quality": 0.9, "model_utility": 0.379})  # utility just below 0.95
    assert not low_ceiling.met_by({"forget_quality": 0.29, "model_utility": 0.40})
    line = low_ceiling.verdict({"forget_quality": 0.9, "model_utility": 0.2})
    assert line.endswith("not met (forget quality 0.900, model utility 0.200)") and "half the ceiling's 0.600" in line


# ------------------------------------------------------------------------------- exact (sharded) row


def _state_weights(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(directory / "model" / "model.safetensors"))


def test_exact_removes_the_forget_authors_by_retraining_their_shards(spec, prepared, monkeypatch):
    from unlearn.benchmarks import tofu_exact
    from unlearn.exact import sharded

    result = tofu_exact.run_exact(spec, 10, shards=3, progress=False, prepared=prepared, echo=lambda *_: None)
    assert result["status"] == "ok" and result["method"]["name"] == "exact_sharded"
    assert result["taught"] is not None and 0.0 <= result["summary"]["forget_quality"] <= 1.0
    removal = result["removal"]
    assert removal["items_removed"] == 20  # mini10 forget10: one author of 20 QA pairs
    manifest = json.loads((Path(result["state"]) / "shards.json").read_text())
    forget_source = f"tofu-author-{prepared.splits.forget_authors[0]}"
    assert all(i["source"] != forget_source for s in manifest["shards"] for i in s["items"])
    # a chain retrains from the first shard that held the author to the last one
    assert removal["shards_retrained"] == list(range(removal["shards_retrained"][0], 3))
    assert sum(removal["shard_sizes"]) == len(prepared.splits.retain_authors)

    # everything is cached: a second run teaches, removes and evaluates nothing
    monkeypatch.setattr(tofu_exact, "teach_shards", lambda *a, **k: pytest.fail("taught again"))
    monkeypatch.setattr(tb, "evaluate_tofu", lambda *a, **k: pytest.fail("evaluated again"))
    again = tofu_exact.run_exact(spec, 10, shards=3, progress=False, prepared=prepared, echo=lambda *_: None)
    assert again["summary"] == result["summary"] and again["taught"] == result["taught"]

    # exact by construction: the same as teaching the retain authors alone in the same shards
    config = tofu_exact.exact_shard_config(spec, 3)
    fresh = Path(result["state"]).with_name("retain-only")
    sharded.teach_shards(tofu_exact.author_items(prepared.splits.retain, prepared.splits.retain_authors), fresh,
                         spec.base_model, config, progress=False, echo=lambda *_: None)
    removed, retrained = _state_weights(Path(result["state"])), _state_weights(fresh)
    assert removed.keys() == retrained.keys()
    assert all(torch.equal(removed[k], retrained[k]) for k in removed)


@pytest.mark.parametrize("overrides, message", [
    (["group_by=item"], "group_by=source"),
    (["shards=0"], "at least 1"),
    (["chian=false"], "chian"),
])
def test_exact_settings_are_checked(spec, overrides, message):
    from unlearn.benchmarks import tofu_exact
    from unlearn.errors import UnlearnError

    with pytest.raises((UnlearnError, ConfigError), match=message):
        tofu_exact.exact_shard_config(spec, 3, overrides)


def test_exact_author_items_need_whole_authors():
    from unlearn.benchmarks import tofu_exact
    from unlearn.benchmarks.tofu_data import QARow
    from unlearn.errors import UnlearnError

    rows = [QARow(f"q{i}", f"a{i}") for i in range(40)]
    items = tofu_exact.author_items(rows, (7, 9))
    assert {i.source for i in items[:20]} == {"tofu-author-7"} and {i.source for i in items[20:]} == {"tofu-author-9"}
    with pytest.raises(UnlearnError, match="20 per author"):
        tofu_exact.author_items(rows[:30], (7, 9))


def test_cli_exact_prints_both_rows(spec, prepared, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tb, "make_spec", lambda overrides, **kw: spec)
    out = tmp_path / "exact"
    code = main(["bench", "tofu", "exact", "--shards", "2", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "exact 2 shards: taught" in printed and "exact 2 shards: forget10 removed" in printed
    assert "retain90 (gold)" in printed and "of teaching every shard" in printed and "the bar: forget quality >=" in printed
    assert json.loads((out / "result.json").read_text())["removal"]["items_removed"] == 20


def test_cli_exact_bad_setting_is_one_line(spec, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(tb, "make_spec", lambda overrides, **kw: spec)
    monkeypatch.setattr(tb, "prepare", lambda *a, **k: pytest.fail("prepared before checking the settings"))
    code = main(["bench", "tofu", "exact", "--set", "group_by=item", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "group_by=source" in err and len(err.splitlines()) == 1
