"""The shared sweep runner: resumable run files, failures recorded, bad files and settings refused."""

import pytest

from unlearn.benchmarks.sweeping import check_grid, parse_grid, run_file, run_label, sweep_runs
from unlearn.errors import ConfigError, TrainingDiverged


def test_runs_are_written_reused_and_failures_kept(tmp_path):
    calls = []

    def run_one(method, overrides):
        calls.append((method, tuple(overrides)))
        if overrides == ["train.lr=1"]:
            raise TrainingDiverged("gradient norm became inf")
        return {"status": "ok", "summary": {"x": len(calls)}, "evaluation": {"per_example": [1, 2]}}

    def failed(method, overrides, error):
        return {"status": "failed", "error": error, "method": method}

    points = parse_grid(["train.lr=1e-5,1"])
    runs = sweep_runs(["npo", "rmu"], points, tmp_path, run_one, failed, key="mini-abc", echo=lambda _: None)
    assert [r["label"] for r in runs] == ["npo lr=1e-5", "npo lr=1", "rmu lr=1e-5", "rmu lr=1"]
    assert [r["status"] for r in runs] == ["ok", "failed", "ok", "failed"]
    assert "inf" in runs[1]["error"] and all("evaluation" not in r for r in runs)
    assert run_file(tmp_path, "npo", ["train.lr=1e-5"], "mini-abc").name.endswith("-mini-abc.json")
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4

    again = sweep_runs(["npo", "rmu"], points, tmp_path, run_one, failed, key="mini-abc", echo=lambda _: None)
    assert len(calls) == 4 and again == runs  # every run read back, none repeated (failed ones too)


def test_an_unreadable_run_file_is_named(tmp_path):
    path = run_file(tmp_path, "npo", [])
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="delete it"):
        sweep_runs(["npo"], [[]], tmp_path, lambda m, o: {}, lambda m, o, e: {}, echo=lambda _: None)


def test_check_grid_checks_every_point_and_grid_errors():
    seen = []
    check_grid(["a", "b"], parse_grid(["train.lr=1,2"]), lambda m, o: seen.append((m, o[0])))
    assert seen == [("a", "train.lr=1"), ("a", "train.lr=2"), ("b", "train.lr=1"), ("b", "train.lr=2")]
    with pytest.raises(ConfigError, match="key=value1,value2"):
        parse_grid(["train.lr"])
    assert run_label("npo", ["method.beta=0.5", "train.lr=1e-5"]) == "npo beta=0.5 lr=1e-5"
    assert run_label("rmu", ["method.seed=1", "train.seed=1", "train.lr=x10"]) == "rmu seed=1 lr=x10"
    assert run_label("rmu", ["method.seed=1", "train.seed=2"]) == "rmu seed=1 seed=2"

def test_a_grid_point_of_one_times_the_defaults_reuses_the_default_run(tmp_path):
    calls = []

    def run_one(method, overrides):
        calls.append(tuple(overrides))
        return {"status": "ok", "summary": {"lr": overrides}}

    sweep_runs(["npo"], [[]], tmp_path, run_one, lambda m, o, e: {}, echo=lambda _: None)
    runs = sweep_runs(["npo"], parse_grid(["train.lr=x1,x3"]), tmp_path, run_one, lambda m, o, e: {},
                      echo=lambda _: None)
    assert calls == [(), ("train.lr=x3",)]  # x1 is the default run, read back
    assert [r["label"] for r in runs] == ["npo lr=x1", "npo lr=x3"]
    assert run_file(tmp_path, "npo", ["train.lr=x1.0", "method.beta=0.5"]) == run_file(tmp_path, "npo",
                                                                                          ["method.beta=0.5"])
    assert run_file(tmp_path, "npo", ["train.lr=x10"]) != run_file(tmp_path, "npo", [])
