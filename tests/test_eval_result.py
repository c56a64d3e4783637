"""EvalResult: the JSON form of an evaluation, and the errors of a file that is not one."""

import json
import math

import pytest

from unlearn.errors import ConfigError
from unlearn.metrics.base import MetricResult
from unlearn.metrics.result import EvalResult


def _result() -> EvalResult:
    results = {"forget_Q_A_Prob": MetricResult(0.5, [0.25, 0.75]), "forget_truth_ratio": MetricResult(math.nan, [0.5, math.nan], 1)}
    return EvalResult.from_metrics("unlearn.test/1", "test", results,
                                   {"forget_Q_A_Prob": "probability", "forget_truth_ratio": "truth_ratio"},
                                   {"sizes": {"forget": 2}})


def test_entries_carry_the_registered_metric_direction_and_version():
    result = _result()
    assert result.metrics["forget_Q_A_Prob"]["metric"] == "probability"
    assert result.higher_is_better("forget_Q_A_Prob") is True  # the registered direction: no use given
    used = EvalResult.from_metrics("unlearn.test/1", "test", {"forget_Q_A_Prob": MetricResult(0.5, [0.5])},
                                   {"forget_Q_A_Prob": "probability"}, directions={"forget_Q_A_Prob": False})
    assert used.higher_is_better("forget_Q_A_Prob") is False  # on forget data: lower is better
    with pytest.raises(ValueError, match="not computed"):
        EvalResult.from_metrics("unlearn.test/1", "test", {}, {}, directions={"forget_Q_A_Prob": False})
    assert result.metrics["forget_truth_ratio"]["version"]
    assert result.n_nan == {"forget_truth_ratio": 1}  # reported, not averaged away
    assert math.isnan(result.summary["forget_truth_ratio"])


def test_round_trip_through_a_file(tmp_path):
    path = tmp_path / "eval.json"
    _result().save(path)
    data = json.loads(path.read_text())
    assert list(data)[:5] == ["schema", "benchmark", "summary", "n_nan", "metrics"] and data["sizes"] == {"forget": 2}
    again = EvalResult.load(path)
    assert again.per_example("forget_Q_A_Prob") == [0.25, 0.75]
    assert again.details == {"sizes": {"forget": 2}}


def test_unknown_metric_names_what_there_is():
    with pytest.raises(ConfigError, match="no metric 'rouge'.*forget_Q_A_Prob"):
        _result().per_example("rouge")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("summary"), "no valid 'summary'"),
        (lambda d: d.update(schema=3), "no valid 'schema'"),
        (lambda d: d["summary"].update(forget_Q_A_Prob="high"), "'forget_Q_A_Prob' is 'high'"),
        (lambda d: d["metrics"]["forget_Q_A_Prob"].pop("version"), "'forget_Q_A_Prob' lacks version"),
    ],
)
def test_a_damaged_file_is_refused_with_the_field_named(tmp_path, damage, message):
    data = _result().to_json()
    damage(data)
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        EvalResult.load(path)


def test_missing_and_invalid_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        EvalResult.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        EvalResult.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="a JSON object"):
        EvalResult.from_json([1, 2])


def test_details_may_not_shadow_the_core_fields():
    result = _result()
    result.details["summary"] = {}
    with pytest.raises(ValueError, match="reserved"):
        result.to_json()
