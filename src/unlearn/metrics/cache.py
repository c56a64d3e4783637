"""Teacher-forced answer statistics, computed once per (question, answer) pair and shared by every metric.

One forward pass of a pair gives everything the likelihood metrics need: the average loss
(probability, truth ratio, probability over options), the greedy token matches (exact memorization,
extraction strength) and, when asked for, the membership-inference scores (LOSS, zlib, Min-K%,
Min-K%++; `mia.py`). Pairs are deduplicated, so a truth ratio's five perturbed answers and a probability over
the same answers cost one pass each, not one per metric; the answers of one question share its prompt, computed
once (`models.scoring.score_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.formatting import encode_qa
from ..models.logprobs import answer_lengths, sequence_logprob
from ..models.scoring import batch_logits, can_share_prompts, plan_openings, score_plan
from .memorization import greedy_matches
from .mia import counted_texts, loss_scores, min_k_plus_plus_scores, min_k_scores, zlib_scores

MIA_SCORES = ("loss", "zlib", "min_k", "min_k_plus_plus")


@dataclass(frozen=True)
class AnswerStats:
    """Teacher-forced statistics of one answer: mean NLL over its tokens, their number, greedy matches,
    and (when the cache computes them) the membership-inference scores named in `MIA_SCORES`."""

    avg_loss: float
    n_tokens: int
    matches: tuple[bool, ...]
    mia: tuple[tuple[str, float], ...] = ()

    def mia_score(self, name: str) -> float:
        scores = dict(self.mia)
        if name not in scores:
            raise KeyError(
                f"no '{name}' score: ask AnswerStatsCache.get(..., mia=True) or build it with mia_scores=True"
            )
        return scores[name]


class AnswerStatsCache:
    """Computes and remembers `AnswerStats` for (question, answer) pairs on one model."""

    def __init__(self, model, tokenizer, batch_size: int = 16, max_length: int = 512, mia_scores: bool = False):
        self.mia_scores = mia_scores  # the default of `get(..., mia=...)`
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_length = max_length
        self._stats: dict[tuple[str, str], AnswerStats] = {}
        self.tokens_scored = 0

    def __len__(self) -> int:
        return len(self._stats)

    def get(self, pairs: list[tuple[str, str]], progress: str | None = None, mia: bool | None = None
            ) -> list[AnswerStats]:
        """Statistics for every pair, computing only the ones not seen before (or seen without the MIA
        scores when `mia` asks for them; they cost a pass over the whole vocabulary per token)."""
        mia = self.mia_scores if mia is None else mia
        missing = list(dict.fromkeys(p for p in pairs if p not in self._stats or (mia and not self._stats[p].mia)))
        if missing:
            self._compute(missing, progress, mia)
        return [self._stats[p] for p in pairs]

    def avg_losses(self, pairs: list[tuple[str, str]], progress: str | None = None) -> list[float]:
        return [s.avg_loss for s in self.get(pairs, progress)]

    @torch.no_grad()
    def _compute(self, pairs: list[tuple[str, str]], progress: str | None, mia: bool) -> None:
        from tqdm.auto import tqdm

        examples = [encode_qa(self.tokenizer, q, a, self.max_length) for q, a in pairs]
        plan = score_plan(examples, self.batch_size, can_share_prompts(self.model))  # the answers of one question share its prompt
        openings = plan_openings(self.model, examples, plan)
        self.tokens_scored += sum(len(o.tokens) for o in openings.values())
        for batch in tqdm(plan, desc=progress, disable=progress is None or len(plan) < 2, leave=False):
            rows, logits, labels, computed = batch_logits(self.model, examples, batch, self.tokenizer.pad_token_id,
                                                          openings)
            lengths = answer_lengths(labels)
            avg = (-sequence_logprob(logits, labels) / lengths.clamp(min=1)).tolist()
            avg = [a if n > 0 else float("nan") for a, n in zip(avg, lengths.tolist(), strict=True)]
            matches = greedy_matches(logits, labels)
            scores = self._mia(logits, labels) if mia else [()] * len(rows)
            self.tokens_scored += computed
            for r, i in enumerate(rows):
                self._stats[pairs[i]] = AnswerStats(avg[r], int(lengths[r]), tuple(matches[r]), scores[r])

    def _mia(self, logits: torch.Tensor, labels: torch.Tensor) -> list[tuple[tuple[str, float], ...]]:
        columns = [
            loss_scores(logits, labels),
            zlib_scores(logits, labels, counted_texts(self.tokenizer, labels)),
            min_k_scores(logits, labels),
            min_k_plus_plus_scores(logits, labels),
        ]
        rows = zip(*(c.tolist() for c in columns), strict=True)
        return [tuple(zip(MIA_SCORES, values, strict=True)) for values in rows]
