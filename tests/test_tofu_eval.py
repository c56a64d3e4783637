"""The TOFU evaluation protocol end to end on a tiny model and a few synthetic rows."""

from __future__ import annotations

import math

import pytest

from unlearn.benchmarks.tofu import (
    add_unseen_forget_quality,
    check_retain_eval,
    evaluate_tofu,
    forget_fingerprint,
)
from unlearn.benchmarks.tofu_data import OptionsRow, PerturbedRow, QARow, TofuSplits
from unlearn.errors import ConfigError
from unlearn.metrics.result import EvalResult
from unlearn.metrics.tofu import MODEL_UTILITY_PARTS


def perturbed(i: int) -> PerturbedRow:
    return PerturbedRow(f"Where did writer {i} live?", f"Writer {i} lived in Oslo.", f"Where was writer {i}'s home?",
                        f"Oslo was home to writer {i}.", tuple(f"Writer {i} lived in Rome {j}." for j in range(5)))


def options(i: int) -> OptionsRow:
    return OptionsRow(f"Who wrote book {i}?", f"Author {i}", (f"Other {i}a", f"Other {i}b", f"Other {i}c"))


def tiny_splits(offset: int = 0) -> TofuSplits:
    forget = [perturbed(i + offset) for i in range(3)]
    return TofuSplits(
        forget=[QARow(r.question, r.answer) for r in forget],
        retain=[QARow(r.question, r.answer) for r in map(perturbed, range(10, 14))],
        holdout=[QARow(f"Where did poet {i} live?", f"Poet {i} lived in Lima.") for i in range(3)],
        forget_perturbed=forget,
        retain_perturbed=[perturbed(i) for i in range(10, 14)],
        real_authors=[options(i) for i in range(2)],
        world_facts=[options(i) for i in range(2, 4)],
    )


@pytest.fixture
def evaluation(tiny_model, tokenizer):
    return evaluate_tofu(tiny_model, tokenizer, tiny_splits(), batch_size=4, max_new_tokens=4, progress=False,
                         base_model="tiny")


def test_summary_has_the_standard_keys_in_range(evaluation):
    summary = evaluation.summary
    for key in ("forget_Q_A_Prob", "forget_Q_A_ROUGE", "forget_truth_ratio", "extraction_strength",
                "exact_memorization", "mia_loss", "mia_min_k", "mia_min_k_plus_plus", "mia_zlib", "model_utility",
                *MODEL_UTILITY_PARTS):
        assert 0.0 <= summary[key] <= 1.0, key
    assert "forget_quality" not in summary  # needs a retain evaluation
    assert len(evaluation.details["forget_truth_ratios"]) == 3
    assert len(evaluation.metrics["mia_loss"]["per_example"]) == 6  # 3 forget + 3 holdout scores


def test_forget_quality_against_itself_is_one(tiny_model, tokenizer, evaluation):
    again = evaluate_tofu(tiny_model, tokenizer, tiny_splits(), retain_eval=evaluation, batch_size=4,
                          max_new_tokens=4, progress=False, base_model="tiny")
    assert again.summary["forget_quality"] == pytest.approx(1.0)
    assert again.summary["privleak"] == pytest.approx(0.0, abs=1e-6)
    assert again.summary["forget_Q_A_Prob"] == pytest.approx(evaluation.summary["forget_Q_A_Prob"])


def test_retain_eval_of_another_forget_set_or_base_is_refused(evaluation):
    other = tiny_splits(offset=100)
    assert forget_fingerprint(other) != evaluation.details["forget_fingerprint"]
    with pytest.raises(ConfigError, match="different forget set"):
        check_retain_eval(evaluation, other)
    with pytest.raises(ConfigError, match="fine-tuned from 'tiny'"):
        check_retain_eval(evaluation, tiny_splits(), base_model="other-base")
    with pytest.raises(ConfigError, match="not a TOFU evaluation"):
        check_retain_eval(EvalResult("x", "tofu", {}, {}), tiny_splits())


def test_empty_split_is_named(tiny_model, tokenizer):
    splits = tiny_splits()
    splits.holdout = []
    with pytest.raises(ConfigError, match="'holdout'"):
        evaluate_tofu(tiny_model, tokenizer, splits, progress=False)


def test_values_are_finite(evaluation):
    assert not evaluation.n_nan
    assert all(math.isfinite(v) for v in evaluation.summary.values())


def test_every_metric_names_its_registered_metric(evaluation):
    from unlearn.benchmarks.tofu import FORGET_LOWER_IS_BETTER
    from unlearn.metrics import METRICS

    for key, entry in evaluation.metrics.items():
        info = METRICS.get(entry["metric"])
        reversed_here = key in FORGET_LOWER_IS_BETTER  # on the forget split, the knowledge should go
        assert entry["higher_is_better"] == (info.higher_is_better != reversed_here), key
        assert entry["version"] == info.version, key
        assert set(entry) == {"value", "per_example", "n_nan", "metric", "higher_is_better", "version"}
    assert evaluation.metrics["forget_truth_ratio"]["metric"] == "truth_ratio"
    assert evaluation.higher_is_better("forget_Q_A_Prob") is False and evaluation.higher_is_better("retain_Q_A_Prob")
    assert evaluation.metrics["ra_Q_A_Prob_normalised"]["metric"] == "probability_w_options"


def test_the_evaluation_survives_its_json_form(evaluation, tmp_path):
    evaluation.save(tmp_path / "eval.json")
    again = EvalResult.load(tmp_path / "eval.json")
    assert again.summary == pytest.approx(evaluation.summary)
    assert again.details["forget_truth_ratios"] == pytest.approx(evaluation.details["forget_truth_ratios"])
    assert again.per_example("mia_loss") == pytest.approx(evaluation.per_example("mia_loss"))
    check_retain_eval(again, tiny_splits(), base_model="tiny")


def test_forget_quality_against_never_taught_authors(tiny_model, tokenizer, evaluation):
    assert "unseen_forget_quality" not in evaluation.summary  # the splits have no never-taught authors
    splits = tiny_splits()
    splits.unseen_perturbed = list(splits.forget_perturbed)  # the same rows: identical truth ratios, p = 1
    same = evaluate_tofu(tiny_model, tokenizer, splits, batch_size=4, max_new_tokens=4, progress=False)
    assert same.summary["unseen_forget_quality"] == pytest.approx(1.0)
    assert same.details["unseen_truth_ratios"] == pytest.approx(same.details["forget_truth_ratios"])
    assert same.metrics["unseen_forget_quality"]["metric"] == "forget_quality"
    splits.unseen_perturbed = [perturbed(i) for i in range(40, 46)]
    other = evaluate_tofu(tiny_model, tokenizer, splits, batch_size=4, max_new_tokens=4, progress=False)
    assert 0.0 <= other.summary["unseen_forget_quality"] <= 1.0
    assert len(other.details["unseen_truth_ratios"]) == 6


def test_unseen_forget_quality_is_added_to_an_older_evaluation(tiny_model, tokenizer, evaluation):
    splits = tiny_splits()
    splits.unseen_perturbed = [perturbed(i) for i in range(40, 46)]
    full = evaluate_tofu(tiny_model, tokenizer, splits, batch_size=4, max_new_tokens=4, progress=False)
    older = EvalResult.from_json(evaluation.to_json())
    assert add_unseen_forget_quality(older, tiny_model, tokenizer, splits, batch_size=4, progress=False)
    assert older.summary["unseen_forget_quality"] == pytest.approx(full.summary["unseen_forget_quality"])
    assert older.details["unseen_truth_ratios"] == pytest.approx(full.details["unseen_truth_ratios"])
    assert not add_unseen_forget_quality(older, tiny_model, tokenizer, splits, progress=False)  # already there
    assert not add_unseen_forget_quality(EvalResult.from_json(evaluation.to_json()), tiny_model, tokenizer,
                                         tiny_splits(), progress=False)  # no never-taught authors
    with pytest.raises(ConfigError, match="different forget set"):
        other = tiny_splits(offset=100)
        other.unseen_perturbed = splits.unseen_perturbed
        add_unseen_forget_quality(EvalResult.from_json(evaluation.to_json()), tiny_model, tokenizer, other,
                                  progress=False)
