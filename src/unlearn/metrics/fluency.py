"""Fluency of generations: n-gram repetition and mean token entropy, so babbling is never called success."""

from __future__ import annotations

from dataclasses import dataclass

# Thresholds calibrated on the embedded model's own answers (see docs/benchmarks.md).
MAX_REPETITION = 0.35
MAX_ENTROPY = 3.5


def repetition_rate(tokens: list[int], n: int = 3) -> float:
    """1 - distinct n-grams / n-grams: 0 for no repeated n-gram, towards 1 for a loop."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


@dataclass
class Fluency:
    repetition: float
    entropy: float
    empty_rate: float

    @property
    def passed(self) -> bool:
        return self.repetition <= MAX_REPETITION and self.entropy <= MAX_ENTROPY

    def to_dict(self) -> dict:
        return {"repetition": self.repetition, "entropy": self.entropy, "empty_rate": self.empty_rate,
                "passed": self.passed, "max_repetition": MAX_REPETITION, "max_entropy": MAX_ENTROPY}


def fluency_of(generations) -> Fluency:
    """Mean repetition rate, mean per-token entropy (nats) and share of empty answers over generations."""
    if not generations:
        return Fluency(0.0, 0.0, 0.0)
    reps = [repetition_rate(g.token_ids) for g in generations]
    ents = [e for g in generations for e in g.entropies]
    empty = sum(1 for g in generations if not g.text.strip())
    return Fluency(sum(reps) / len(reps), sum(ents) / max(len(ents), 1), empty / len(generations))
