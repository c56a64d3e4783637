"""TOFU's likelihood metrics as pure functions of per-example average losses.

Every input is an *average loss*: the mean negative log-likelihood over an answer's tokens,
`avg_loss = -(1/|y|) log pi(y|x)`, computed once per (question, answer) pair by the evaluation engine.
TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs", arXiv:2401.06121) and its
maintained implementation OpenUnlearning (locuslab/open-unlearning, src/evals/metrics/memorization.py,
utils.py, utility.py) define:

- probability         p_i = exp(-avg_loss_i)                      (= P(y|x)^(1/|y|))
- probability over options (real authors, world facts)
                      p_i / (p_i + sum_j p_ij^wrong + 1e-10)
- truth ratio         R_i = exp(-mean_j avg_loss_ij^pert) / (exp(-avg_loss_i^para) + 1e-10)
                      i.e. the geometric mean of the perturbed answers' normalised probabilities over the
                      paraphrased answer's; the TOFU paper's formula takes the arithmetic mean instead
                      (`pooling="arithmetic"`), its code and OpenUnlearning the geometric one (default).
- forget quality      the p-value of the two-sample Kolmogorov-Smirnov test between the unlearned and the
                      retain model's per-example forget truth ratios (OpenUnlearning applies it to 1/R;
                      the KS statistic is invariant under that monotone map, so the p-value is the same).
- model utility       the harmonic mean of the nine retain / real-authors / world-facts components.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .base import MetricResult, mean_result, metric

EPS = 1e-10  # the references' guard against division by zero
TRUTH_RATIO_AGGREGATIONS = ("closer_to_1_better", "true_better", "prob_mean")
POOLINGS = ("geometric", "arithmetic")


def _array(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ConfigError(f"{name}: no examples")
    return array


@metric("probability", higher_is_better=True, version="1")
def probability(avg_losses: Sequence[float]) -> MetricResult:
    """Mean over examples of exp(-avg_loss) = P(y|x)^(1/|y|) (TOFU "Probability")."""
    return mean_result(np.exp(-_array(avg_losses, "probability")).tolist())


@metric("probability_w_options", higher_is_better=True, version="1")
def probability_over_options(correct_avg_losses: Sequence[float], wrong_avg_losses) -> MetricResult:
    """TOFU probability of the correct answer normalised over the answer options.

    Mean over examples of p / (p + sum_j p_j^wrong + 1e-10), with p = exp(-avg_loss) for the correct
    answer and each wrong option (TOFU real-authors / world-facts "Probability"; OpenUnlearning
    `probability_w_options`). `wrong_avg_losses` has shape (examples, options)."""
    correct = np.exp(-_array(correct_avg_losses, "probability_w_options"))
    wrong = np.exp(-_array(wrong_avg_losses, "probability_w_options"))
    if wrong.ndim != 2 or wrong.shape[0] != correct.shape[0]:
        raise ConfigError("probability_w_options: wrong_avg_losses must have shape (examples, options)")
    return mean_result((correct / (correct + wrong.sum(axis=1) + EPS)).tolist())


def truth_ratios(para_avg_losses: Sequence[float], pert_avg_losses, pooling: str = "geometric") -> np.ndarray:
    """Per-example R = pooled perturbed probability / (paraphrased probability + 1e-10).

    `geometric` pools exp(-mean_j avg_loss_j) (TOFU code, OpenUnlearning); `arithmetic` pools
    mean_j exp(-avg_loss_j) (the TOFU paper's formula)."""
    para = _array(para_avg_losses, "truth_ratio")
    pert = _array(pert_avg_losses, "truth_ratio")
    if pert.ndim != 2 or pert.shape[0] != para.shape[0]:
        raise ConfigError("truth_ratio: perturbed losses must have shape (examples, perturbed answers)")
    if pooling == "geometric":
        pooled = np.exp(-pert.mean(axis=1))
    elif pooling == "arithmetic":
        pooled = np.exp(-pert).mean(axis=1)
    else:
        raise ConfigError(f"truth ratio pooling '{pooling}' is unknown; use one of {', '.join(POOLINGS)}")
    return pooled / (np.exp(-para) + EPS)


def aggregate_truth_ratios(ratios: Sequence[float], aggregation: str) -> MetricResult:
    """Aggregate per-example truth ratios R (OpenUnlearning `truth_ratio` aggregators):

    - `closer_to_1_better`: mean min(R, 1/(R + 1e-10)) — forget splits (1 = true and false equally likely);
    - `true_better`: mean max(0, 1 - R) — retain, real authors, world facts (the TOFU default there);
    - `prob_mean`: mean 1/(1 + R) = P_para / (P_para + P_pert), the form written in the OpenUnlearning
      report (arXiv:2506.12618, appendix), an option only.

    Per-example values are the transformed ones; NaN ratios make the aggregate NaN and are counted."""
    r = np.asarray(ratios, dtype=np.float64)
    if aggregation == "closer_to_1_better":
        values = np.minimum(r, 1.0 / (r + EPS))
    elif aggregation == "true_better":
        values = np.maximum(0.0, 1.0 - r)  # np.maximum keeps NaN
    elif aggregation == "prob_mean":
        values = 1.0 / (1.0 + r)
    else:
        raise ConfigError(
            f"truth ratio aggregation '{aggregation}' is unknown; use one of {', '.join(TRUTH_RATIO_AGGREGATIONS)}"
        )
    return mean_result(values.tolist())


@metric("truth_ratio", higher_is_better=True, version="1")
def truth_ratio(para_avg_losses, pert_avg_losses, aggregation: str, pooling: str = "geometric") -> MetricResult:
    """TOFU truth ratio, aggregated by name (see `aggregate_truth_ratios`)."""
    return aggregate_truth_ratios(truth_ratios(para_avg_losses, pert_avg_losses, pooling), aggregation)


@metric("forget_quality", higher_is_better=True, version="1")
def forget_quality(unlearned_ratios: Sequence[float], retain_ratios: Sequence[float]) -> MetricResult:
    """TOFU forget quality: KS-test p-value of unlearned vs retain model forget truth ratios.

    The two-sample Kolmogorov-Smirnov test (scipy `ks_2samp`, two-sided, default method) between the
    per-example forget truth ratios of the unlearned and the retain model. High = indistinguishable from
    the retain model. NaN ratios are reported, and make the value NaN."""
    from scipy.stats import ks_2samp

    a = _array(unlearned_ratios, "forget_quality")
    b = _array(retain_ratios, "forget_quality")
    n_nan = int(np.isnan(a).sum() + np.isnan(b).sum())
    if n_nan:
        return MetricResult(float("nan"), a.tolist(), n_nan)
    return MetricResult(float(ks_2samp(a, b).pvalue), a.tolist(), 0)


def harmonic_mean(values: Sequence[float]) -> float:
    """n / sum(1/x); 0 if any value is 0 (as scipy's hmean gives); negative values are an error."""
    x = _array(values, "harmonic_mean")
    if np.isnan(x).any():
        return float("nan")
    if (x < 0).any():
        raise ConfigError("harmonic mean of negative values is undefined")
    if (x == 0).any():
        return 0.0
    return float(len(x) / np.sum(1.0 / x))


MODEL_UTILITY_PARTS = (
    "retain_Q_A_Prob", "retain_Q_A_ROUGE", "retain_Truth_Ratio",
    "ra_Q_A_Prob_normalised", "ra_Q_A_ROUGE", "ra_Truth_Ratio",
    "wf_Q_A_Prob_normalised", "wf_Q_A_ROUGE", "wf_Truth_Ratio",
)


@metric("model_utility", higher_is_better=True, version="1")
def model_utility(parts: dict[str, float]) -> MetricResult:
    """Harmonic mean of the nine TOFU utility components (`MODEL_UTILITY_PARTS`; OpenUnlearning `hm_aggregate`).
    The per-example list holds the components in that order."""
    missing = [k for k in MODEL_UTILITY_PARTS if k not in parts]
    if missing:
        raise ConfigError(f"model_utility needs {', '.join(missing)}")
    values = [float(parts[k]) for k in MODEL_UTILITY_PARTS]
    return MetricResult(harmonic_mean(values), values, sum(math.isnan(v) for v in values))
