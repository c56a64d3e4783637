"""Metrics: registered functions with metadata; the probe evaluation used by runs and the demo."""

from . import mcq, memorization, mia, muse, privacy, rwku, semantic, tofu  # noqa: F401  (registers their metrics)
from .base import METRICS, MetricResult, mean_result, metric
from .fluency import fluency_of, repetition_rate
from .generation import generate_answers
from .probes import evaluate_probe_groups, evaluate_request, probe_groups
from .text import contains_answer, normalize_answer, rouge_l

__all__ = [
    "METRICS",
    "MetricResult",
    "contains_answer",
    "evaluate_probe_groups",
    "evaluate_request",
    "fluency_of",
    "generate_answers",
    "mean_result",
    "metric",
    "normalize_answer",
    "probe_groups",
    "repetition_rate",
    "rouge_l",
]
