"""Retain examples like the forget examples: each forget example's pool of syntactically similar retain items.

Unlearning damages most the retain queries that share the forget queries' syntactic structure ("When was
<someone else> born?" while forgetting "When was X born?"), and regularising on exactly those keeps them
(Chang & Lee 2025, "Which Retain Set Matters for LLM Unlearning?", arXiv 2502.11441). Here syntax is
approximated by the tokens the example does not train on (its prompt and the unfocused part of its answer):

    similarity(f, r) = |T(f) ∩ T(r)| / |T(f) ∪ T(r)|      (Jaccard of token-id sets)

where T(x) leaves out the tokens every example has (the chat template's own). With `train.retain_similar`
= m, m of each step's retain examples are drawn, one per forget example of the step, uniformly from that
forget example's pool: its `SIMILAR_POOL` most similar retain items (of those sharing any structure token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.formatting import Example
from ..models.logprobs import IGNORE

SIMILAR_POOL = 16  # retain items a forget example's matches are drawn from (>= the 11 same-question people of the demo)


def structure_tokens(example: Example) -> frozenset[int]:
    """The token ids the example does not train on (prompt, unfocused answer); all of them if it trains on every one."""
    unlabelled = frozenset(t for t, label in zip(example.input_ids, example.labels, strict=True) if label == IGNORE)
    return unlabelled or frozenset(example.input_ids)


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """|a ∩ b| / |a ∪ b|; 0 for two empty sets."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def similar_pools(forget: Sequence[Example], retain: Sequence[Example], pool: int = SIMILAR_POOL) -> list[list[int]]:
    """For each forget example, the indices of the `pool` retain examples most similar to it (ties by index),
    leaving out those it shares nothing with; every retain index when it shares nothing with any."""
    forget_sets = [structure_tokens(e) for e in forget]
    retain_sets = [structure_tokens(e) for e in retain]
    everywhere = frozenset.intersection(*forget_sets, *retain_sets) if forget_sets and retain_sets else frozenset()
    forget_sets = [s - everywhere for s in forget_sets]
    retain_sets = [s - everywhere for s in retain_sets]
    pools = []
    for f in forget_sets:
        scores = [jaccard(f, r) for r in retain_sets]
        ranked = sorted((i for i in range(len(retain_sets)) if scores[i] > 0), key=lambda i: (-scores[i], i))
        pools.append(ranked[:pool] or list(range(len(retain_sets))))
    return pools


@dataclass(frozen=True)
class SimilarRetain:
    """The retain sampler of `train.retain_similar` (a hook, train/hooks.py): min(similar, size) of a
    micro-batch's retain examples drawn, one per forget example in turn, from that example's pool of similar
    retain items; the rest uniformly."""

    pools: list[list[int]]
    n_retain: int
    similar: int

    @classmethod
    def of(cls, forget: Sequence[Example], retain: Sequence[Example], similar: int) -> SimilarRetain:
        return cls(similar_pools(forget, retain), len(retain), similar)

    def picks(self, size: int, forget_indices: list[int], generator: torch.Generator) -> list[int]:
        matched = min(self.similar, size)
        picks = []
        for j in range(matched):
            pool = self.pools[forget_indices[j % len(forget_indices)]]
            picks.append(pool[int(torch.randint(len(pool), (1,), generator=generator))])
        return picks + torch.randint(self.n_retain, (size - matched,), generator=generator).tolist()
