"""Embedding corruption: noise on the prompt's token embeddings when the classifier fires.

For a prompt the classifier relates to stored request r (guards/classifier.py, or naming its target), the
embeddings of every prompt token get Gaussian noise before the first layer:

    e_t' = e_t + sigma_r * rms(E) * z_t,    z_t ~ N(0, I),   rms(E) = sqrt(mean of E_ij^2) over the embedding matrix

so sigma is in units of the embeddings' typical size. sigma_r is tuned offline when the request is added:
the smallest value on `grid` at which the forget probes (questions and paraphrases), answered greedily
under the noise, reach at most `target_accuracy`; when none does, the largest (recorded in `state`).
Other prompts are untouched.

Liu et al. 2024, "Large Language Model Unlearning via Embedding-Corrupted Prompts" (ECO, NeurIPS, arXiv
2406.07933): a prompt classifier plus corruption of the prompt embeddings, with the corruption strength
optimised offline against the forget target. Their corruption is a zeroth-order-tuned noise on chosen
dimensions; ours is isotropic noise with sigma chosen on a grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from .base import GUARDS, Guard, PromptView


def forget_accuracy(model, tokenizer, request, batch_size: int = 16, max_new_tokens: int = 32) -> float:
    """Share of the request's forget probes (and paraphrases) whose greedy answer gives the answer (the judge,
    metrics/judge.py, at its default threshold)."""
    from ..metrics.generation import generate_answers
    from ..metrics.probes import expand_paraphrases, probe_accuracy

    probes = request.probes.forget + expand_paraphrases(request.probes.forget)
    if not probes:
        return 0.0
    replies = generate_answers(model, tokenizer, [p.question for p in probes], batch_size, max_new_tokens)
    return probe_accuracy([g.text for g in replies], [p.answer for p in probes], [p.aliases for p in probes]).value


@GUARDS.register("embedding_corruption")
@dataclass
class EmbeddingCorruption(Guard):
    """Adds tuned Gaussian noise to the prompt embeddings of prompts about a stored request."""

    summary = "noise on the prompt's token embeddings when the classifier fires, strength tuned per request"

    sigma: float | None = None  # None: tuned per request on its forget probes
    grid: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    target_accuracy: float = 0.0
    gate: bool = True  # False: every prompt gets the noise of the strongest request
    max_false_positive: float = 0.05
    match_names: bool = True
    strengths: dict[str, float] = field(default_factory=dict)  # per request id, filled by `add`

    def validate(self) -> None:
        if self.sigma is not None and self.sigma < 0:
            raise ConfigError(f"embedding_corruption: sigma must be >= 0, got {self.sigma}")
        if not self.grid or any(s <= 0 for s in self.grid):
            raise ConfigError(f"embedding_corruption: grid must hold positive strengths, got {self.grid}")

    def add(self, request, host) -> None:
        if request.id in self.strengths:
            return
        self.strengths[request.id] = self.sigma if self.sigma is not None else self.tune(request, host)

    def tune(self, request, host) -> float:
        """The smallest strength on the grid that brings the forget probes to `target_accuracy`."""
        from .guarded import GuardedModel

        if not request.probes.forget:
            return max(self.grid)
        for sigma in sorted(self.grid):
            fixed = GuardedModel(host.model, host.tokenizer, [_FixedNoise(sigma)], index=host.index, seed=host.seed)
            if forget_accuracy(fixed, host.tokenizer, request) <= self.target_accuracy:
                return sigma
        return max(self.grid)

    def noise(self, views: list[PromptView], host) -> list[float]:
        requests = host.index.requests
        if not requests:
            return [0.0] * len(views)
        if not self.gate:
            return [max(self.strengths.get(r.id, 0.0) for r in requests)] * len(views)
        related = host.index.related([v.text for v in views], self.max_false_positive,
                                     self.match_names)
        return [self.strengths.get(requests[r].id, 0.0) if r is not None else 0.0 for r in related]

    def state(self) -> dict:
        return {"strengths": dict(self.strengths)}


class _FixedNoise(Guard):
    """Noise of one strength on every prompt (used while tuning)."""

    def __init__(self, sigma: float):
        self.sigma = sigma

    def add(self, request, host) -> None:
        pass

    def noise(self, views, host) -> list[float]:
        return [self.sigma] * len(views)
