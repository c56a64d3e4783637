"""Refusal filter: refuse any prompt about a forgotten target, decided by a calibrated embedding classifier.

A prompt gets a refusal when (a) the shared classifier (guards/classifier.py) relates it to a stored
request: its best all-MiniLM-L6-v2 cosine to the request's texts is at least `floor` and beats its best
cosine to the negatives (general questions, retain questions, the request's questions about other people)
by the margin delta, calibrated leave-one-out so that at most `max_false_positive` of the negatives would
fire; or (b) it names the target (full name or surname, whole words; `match_names`). Adding a request
embeds its texts and nothing else, so a new request takes effect on the next call.

The prompt-classifier guard of the guardrail baselines in Thaker et al. 2024, "Guardrail Baselines for
Unlearning in LLMs" (arXiv 2403.03329), and the classifier half of Liu et al. 2024's embedding-corrupted
prompts (arXiv 2406.07933); the biography negatives, the margin rule and the name match are ours.
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

    margin: float | None = None  # delta; None: calibrated on the negatives at max_false_positive
    max_false_positive: float = 0.05
    match_names: bool = True
    refusal: str = REFUSAL

    def validate(self) -> None:
        if not 0.0 <= self.max_false_positive < 1.0:
            raise ConfigError(f"refusal_filter: max_false_positive must be in [0, 1), got {self.max_false_positive}")
        if self.margin is not None and not -2.0 <= self.margin <= 2.0:
            raise ConfigError(f"refusal_filter: margin is a difference of cosines in [-2, 2], got {self.margin}")

    def add(self, request, host) -> None:
        """Nothing beyond the shared index, which the host updates."""

    def reply(self, views: list[PromptView], host) -> list[str | None]:
        related = host.index.related([v.text for v in views], self.max_false_positive, self.match_names, self.margin)
        return [self.refusal if r is not None else None for r in related]
