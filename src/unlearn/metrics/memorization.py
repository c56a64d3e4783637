"""Token-level memorization: exact memorization and extraction strength.

Both start from teacher-forced greedy matches: for each answer token y_t, whether the model's most
likely next token given (x, y_<t) is y_t. Following OpenUnlearning (src/evals/metrics/utils.py,
`tokenwise_vocab_logprobs`), the last answer token (the end-of-turn marker) is left out.

- exact memorization (Tirumala et al. 2022, "Memorization Without Overfitting"; OpenUnlearning
  `exact_memorization`): EM = (1/n) sum_t 1[argmax p(.|x, y_<t) = y_t].
- extraction strength (Carlini et al. 2021 / Wang et al. 2025, "Towards Effective Evaluations and
  Comparisons for LLM Unlearning Methods", ICLR): ES = 1 - k*/n, where k* is the smallest k such that
  the model, given the first k answer tokens, completes the rest greedily (all matches from k on).
  With no such k < n, k* = n and ES = 0 (`variant="paper"`, default). OpenUnlearning's loop stops at
  k = n - 1 in that case and reports 1/n (`variant="open_unlearning"`).

As for probability, higher means better known: on a forget split the goal is low values.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..models.logprobs import shift
from .base import MetricResult, mean_result, metric

ES_VARIANTS = ("paper", "open_unlearning")


@torch.no_grad()
def greedy_matches(logits: torch.Tensor, labels: torch.Tensor) -> list[list[bool]]:
    """Per example, whether each answer token (the last one excluded) is the model's argmax prediction."""
    logits, labels = shift(logits, labels)
    hits = logits.argmax(dim=-1) == labels
    mask = labels != -100
    out = []
    for row_hits, row_mask in zip(hits, mask, strict=True):
        out.append(row_hits[row_mask].tolist()[:-1])
    return out


def exact_memorization_value(matches: list[bool]) -> float:
    """Share of matched tokens; NaN when there is no token to score."""
    return sum(matches) / len(matches) if matches else float("nan")


def extraction_strength_value(matches: list[bool], variant: str = "paper") -> float:
    """1 - k*/n with k* the start of the longest all-matching suffix (see the module docstring)."""
    if variant not in ES_VARIANTS:
        raise ConfigError(f"extraction strength variant '{variant}' is unknown; use one of {', '.join(ES_VARIANTS)}")
    n = len(matches)
    if n == 0:
        return float("nan")
    k = n
    while k > 0 and matches[k - 1]:
        k -= 1
    if variant == "open_unlearning" and k == n:
        k = n - 1
    return 1.0 - k / n


@metric("exact_memorization", higher_is_better=True, version="1")
def exact_memorization(matches: list[list[bool]]) -> MetricResult:
    """Mean share of answer tokens the model predicts greedily (on a forget split, lower is the goal)."""
    return mean_result([exact_memorization_value(m) for m in matches])


@metric("extraction_strength", higher_is_better=True, version="1")
def extraction_strength(matches: list[list[bool]], variant: str = "paper") -> MetricResult:
    """Mean extraction strength: how short a prefix makes the model complete the answer (forget: lower)."""
    return mean_result([extraction_strength_value(m, variant) for m in matches])
