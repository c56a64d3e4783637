"""Known answers for TOFU's likelihood metrics and token-level memorization, worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unlearn.errors import ConfigError
from unlearn.metrics.base import METRICS
from unlearn.metrics.memorization import (
    exact_memorization,
    extraction_strength,
    extraction_strength_value,
    greedy_matches,
)
from unlearn.metrics.tofu import (
    MODEL_UTILITY_PARTS,
    aggregate_truth_ratios,
    forget_quality,
    harmonic_mean,
    model_utility,
    probability,
    probability_over_options,
    truth_ratio,
    truth_ratios,
)

LN2, LN4, LN8 = math.log(2), math.log(4), math.log(8)


def test_probability_is_the_mean_normalised_answer_probability():
    # exp(-0) = 1 and exp(-ln 2) = 0.5 -> mean 0.75
    result = probability([0.0, LN2])
    assert result.value == pytest.approx(0.75) and result.per_example == pytest.approx([1.0, 0.5])


def test_probability_over_options():
    # correct p = 0.5; two wrong options of p = 0.25 each -> 0.5 / (0.5 + 0.5) = 0.5
    # second example: correct p = 1, wrong 0.5 and 0.25 -> 1 / 1.75
    result = probability_over_options([LN2, 0.0], [[LN4, LN4], [LN2, LN4]])
    assert result.per_example == pytest.approx([0.5, 1 / 1.75])
    with pytest.raises(ConfigError, match="shape"):
        probability_over_options([LN2], [LN4])


def test_truth_ratio_pooling():
    # paraphrased p = 0.5; perturbed p = 0.5 and 0.125
    # geometric: exp(-(ln2 + ln8)/2) = exp(-ln 4) = 0.25 -> R = 0.5
    # arithmetic: (0.5 + 0.125)/2 = 0.3125 -> R = 0.625
    assert truth_ratios([LN2], [[LN2, LN8]])[0] == pytest.approx(0.5)
    assert truth_ratios([LN2], [[LN2, LN8]], pooling="arithmetic")[0] == pytest.approx(0.625)
    with pytest.raises(ConfigError, match="pooling 'median'"):
        truth_ratios([LN2], [[LN2]], pooling="median")


def test_truth_ratio_aggregations():
    r = [0.5, 2.0]
    # min(R, 1/R) = 0.5 for both
    assert aggregate_truth_ratios(r, "closer_to_1_better").value == pytest.approx(0.5)
    # max(0, 1 - R) = 0.5 and 0 -> 0.25
    assert aggregate_truth_ratios(r, "true_better").value == pytest.approx(0.25)
    # 1/(1 + R) = 2/3 and 1/3 -> 0.5
    assert aggregate_truth_ratios(r, "prob_mean").value == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="closer_to_1_better, true_better, prob_mean"):
        aggregate_truth_ratios(r, "closer")
    # para p = 0.5 and pert p = 0.25 -> R = 0.5 -> true_better 0.5
    assert truth_ratio([LN2], [[LN4, LN4]], aggregation="true_better").value == pytest.approx(0.5)


def test_nan_ratios_are_counted_not_averaged():
    result = aggregate_truth_ratios([0.5, float("nan")], "true_better")
    assert math.isnan(result.value) and result.n_nan == 1 and result.per_example[0] == pytest.approx(0.5)


def test_forget_quality_is_the_ks_p_value():
    same = [0.1, 0.4, 0.7, 0.9, 1.3]
    assert forget_quality(same, same).value == pytest.approx(1.0)
    # Disjoint samples of 5 and 5: D = 1 only for the two orderings where one sample lies wholly below
    # the other, so the exact two-sided p-value is 2 / C(10, 5) = 2/252.
    assert forget_quality([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]).value == pytest.approx(2 / 252)
    nan = forget_quality([1.0, float("nan")], [1.0, 2.0])
    assert math.isnan(nan.value) and nan.n_nan == 1


def test_model_utility_is_the_harmonic_mean_of_nine_parts():
    parts = dict.fromkeys(MODEL_UTILITY_PARTS, 1.0)
    parts["wf_Truth_Ratio"] = 0.5
    # 9 / (8 * 1 + 1 / 0.5) = 0.9
    assert model_utility(parts).value == pytest.approx(0.9)
    assert model_utility(parts | {"ra_Q_A_ROUGE": 0.0}).value == 0.0
    with pytest.raises(ConfigError, match="retain_Q_A_Prob"):
        model_utility({k: v for k, v in parts.items() if k != "retain_Q_A_Prob"})
    assert harmonic_mean([0.25, 0.75]) == pytest.approx(2 / (4 + 4 / 3))
    with pytest.raises(ConfigError, match="negative"):
        harmonic_mean([-1.0, 1.0])


def test_greedy_matches_leave_out_the_last_answer_token():
    # Sequence of 5 tokens, prompt = first two; answer tokens 2, 3, 1 at positions 2, 3, 4.
    # Logits at t predict token t+1: position 1 predicts 2 (hit), position 2 predicts 0 (miss, label 3),
    # position 3 predicts 1 (hit, but that is the last answer token, left out).
    logits = torch.zeros(1, 5, 4)
    logits[0, 1, 2] = 5.0
    logits[0, 2, 0] = 5.0
    logits[0, 3, 1] = 5.0
    labels = torch.tensor([[-100, -100, 2, 3, 1]])
    assert greedy_matches(logits, labels) == [[True, False]]


def test_exact_memorization_and_extraction_strength():
    # [T, F, T, T]: EM = 3/4; the longest all-matching suffix starts at k = 2 -> ES = 1 - 2/4
    assert exact_memorization([[True, False, True, True]]).value == pytest.approx(0.75)
    assert extraction_strength_value([True, False, True, True]) == pytest.approx(0.5)
    assert extraction_strength_value([True, True, True]) == pytest.approx(1.0)
    # No matching suffix: k* = n -> 0 in the paper; OpenUnlearning's loop stops at n - 1 -> 1/n
    assert extraction_strength_value([True, True, False]) == 0.0
    assert extraction_strength_value([True, True, False], "open_unlearning") == pytest.approx(1 / 3)
    empty = extraction_strength([[], [True]])
    assert math.isnan(empty.value) and empty.n_nan == 1


def test_metrics_are_registered_with_metadata():
    for name in ("probability", "probability_w_options", "truth_ratio", "forget_quality", "model_utility",
                 "exact_memorization", "extraction_strength"):
        info = METRICS.get(name)
        assert info.version and isinstance(info.higher_is_better, bool) and info.description
    assert np.isclose(METRICS.get("probability").fn([0.0]).value, 1.0)
