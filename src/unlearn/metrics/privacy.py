"""Privacy leakage (MUSE PrivLeak): how far the unlearned model's MIA AUC is from a retain model's.

MUSE (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for Language Models", arXiv
2407.06460, criterion C3 "no privacy leakage") defines

    PrivLeak = (AUC(f_unlearn) - AUC(f_retrain)) / AUC(f_retrain) * 100

with AUC the Min-K% (k = 40%) membership-inference AUC over forget vs holdout *in MUSE's orientation*,
which is 1 minus ours (MUSE's `sweep` scores the non-member side: a model that memorised the forget set
has MUSE AUC near 0). `mia.roc_auc` follows OpenUnlearning (AUC near 1 for that model), so, as
OpenUnlearning's `privleak` (src/evals/metrics/privacy.py) does, both AUCs are flipped first:

    privleak = ((1 - auc_unlearned) - (1 - auc_retain)) / ((1 - auc_retain) + 1e-10) * 100

The 1e-10 is OpenUnlearning's guard; MUSE divides without it. Reading: 0 = as private as the retain
model (the target); negative = the forget set still looks like training data (under-unlearning; the
original model is near -100); positive = it looks less familiar than unseen text (over-unlearning).
"""

from __future__ import annotations

import math

from .base import MetricResult, metric

EPS = 1e-10  # OpenUnlearning's guard against a zero reference


def relative_difference(value: float, reference: float) -> float:
    """(value - reference) / (reference + 1e-10) * 100 (OpenUnlearning `rel_diff`)."""
    return (value - reference) / (reference + EPS) * 100


def privleak_value(auc_unlearned: float, auc_retain: float) -> float:
    """MUSE PrivLeak from two AUCs in our orientation (1 = forget looks trained on); see the module notes."""
    return relative_difference(1 - auc_unlearned, 1 - auc_retain)


@metric("privleak", higher_is_better=True, version="1")
def privleak(auc_unlearned: float, auc_retain: float) -> MetricResult:
    """MUSE PrivLeak in percent; 0 is ideal, negative = under-unlearning, positive = over-unlearning.

    `auc_unlearned` and `auc_retain` are `mia_min_k` values (or another MIA AUC, the same for both) of the
    unlearned model and of a model trained without the forget set. OpenUnlearning falls back to 0.5 for
    the retain AUC when no retain model was evaluated; here it must be given. Registered as
    higher-is-better because unlearning moves it up from about -100 towards 0; above 0 is over-unlearning,
    which a single direction cannot express: compare |privleak| there. per_example holds the two AUCs
    (unlearned, retain); a NaN among them is counted and makes the value NaN.
    """
    aucs = [float(auc_unlearned), float(auc_retain)]
    n_nan = sum(math.isnan(a) for a in aucs)
    value = math.nan if n_nan else privleak_value(*aucs)
    return MetricResult(value, aucs, n_nan)
