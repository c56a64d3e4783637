"""Refusal filter: refuse any prompt about a forgotten target, decided by a calibrated embedding classifier.

A prompt gets a refusal when (a) its similarity to a stored request's texts reaches the calibrated
threshold (guards/classifier.py: max over the prompt's sentences and the request's questions, answers,
paraphrases and text sentences, all-MiniLM-L6-v2 cosine), or (b) it names the target (full name or
surname, whole words; `match_names`). The threshold is calibrated so that at most `max_false_positive` of
the negative prompts (general-knowledge questions, the requests' neighbour and retain questions) would
be refused. Adding a request embeds its texts and nothing else, so a new request takes effect at once.

The prompt-classifier guard of the guardrail baselines in Thaker et al. 2024, "Guardrail Baselines for
Unlearning in LLMs" (arXiv 2403.03329), and the classifier half of Liu et al. 2024's embedding-corrupted
prompts (arXiv 2406.07933); the threshold rule and the name match are ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .base import GUARDS, REFUSAL, Guard, PromptView


@GUARDS.register("refusal_filter")
@dataclass
class RefusalFilter(Guard):
    """Refuses prompts the classifier relates to a stored request."""

    summary = "refuse prompts about a forgotten target (embedding classifier + name match)"

    threshold: float | None = None  # None: calibrated on the negatives at max_false_positive
    max_false_positive: float = 0.05
    match_names: bool = True
    refusal: str = REFUSAL

    def validate(self) -> None:
        if not 0.0 <= self.max_false_positive < 1.0:
            raise ConfigError(f"refusal_filter: max_false_positive must be in [0, 1), got {self.max_false_positive}")
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"refusal_filter: threshold is a cosine in [-1, 1], got {self.threshold}")

    def add(self, request, host) -> None:
        """Nothing beyond the shared index, which the host updates."""

    def current_threshold(self, host) -> float:
        return self.threshold if self.threshold is not None else host.index.threshold(self.max_false_positive)

    def reply(self, views: list[PromptView], host) -> list[str | None]:
        related = host.index.related([v.text for v in views], self.current_threshold(host), self.match_names)
        return [self.refusal if r is not None else None for r in related]

    def state(self) -> dict:
        return {}
