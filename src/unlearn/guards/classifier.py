"""The prompt classifier every gated guard shares: which stored request, if any, is a prompt about?

Each added request contributes the sentence embeddings (all-MiniLM-L6-v2, metrics/semantic.py) of its
target, its forget questions and answers (also with the target's name replaced by "this person"), its
forget probes and their paraphrases, and the sentences of its forget texts. A prompt is scored against
request r as

    s_r(prompt) = max over windows w of the prompt, max over stored texts t of r, cos(e(w), e(t))

where the windows are the whole prompt and each of its sentences and lines (so a forgotten question hidden
in a longer prompt still scores high). A prompt also *names* r when it contains the target's full name or
surname as whole words.

Calibration: the threshold is the (1 - max_false_positive) quantile of the scores of negative prompts,
questions that must keep being answered (the built-in general-knowledge questions, and each request's
neighbour and general probes and retain questions), plus a small margin. Adding a request embeds only its
own texts and updates the negatives' best scores with the new vectors, so it costs the same for the 1st
request as for the 100th.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..attacks.base import anonymise, mentions, name_forms
from ..data.request import ForgetRequest

MARGIN = 1e-4
MAX_TEXT_SENTENCES = 64
_SPLIT = re.compile(r"(?<=[.?!])\s+|\n+")


def windows(text: str, min_words: int = 3) -> list[str]:
    """The whole text and each of its sentences and lines with at least `min_words` words."""
    parts = [p.strip() for p in _SPLIT.split(text) if len(p.split()) >= min_words]
    return list(dict.fromkeys([text.strip(), *parts]))


def request_texts(request: ForgetRequest) -> list[str]:
    """What a prompt about the request resembles: target, forget questions/answers (named and unnamed),
    forget probes with their paraphrases, sentences of the forget texts."""
    texts = [request.target]
    for qa in request.forget.qa:
        texts += [qa.question, qa.answer, anonymise(qa.answer, request.target)]
    for probe in request.probes.forget:
        texts += [probe.question, *probe.paraphrases]
    sentences = [s for t in request.forget.texts for s in windows(t)[1:] or [t]]
    texts += sentences[:MAX_TEXT_SENTENCES]
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))


def negative_texts(request: ForgetRequest) -> list[str]:
    """Prompts that must not be refused because of this request: its neighbour and general probes and
    retain questions."""
    probes = [*request.probes.neighbour, *request.probes.general]
    texts = [q for p in probes for q in (p.question, *p.paraphrases)] + [qa.question for qa in request.retain.qa]
    return list(dict.fromkeys(texts))


def builtin_negatives() -> list[str]:
    from ..data.general import general_knowledge

    return [item.question for item in general_knowledge()]


def threshold_at(scores: torch.Tensor, max_false_positive: float) -> float:
    """The smallest threshold that at most `max_false_positive` of `scores` reach (scores >= threshold
    fire): the (1 - fpr) quantile plus a margin."""
    if scores.numel() == 0:
        return 0.5
    return float(torch.quantile(scores.float(), 1.0 - max_false_positive)) + MARGIN


@dataclass
class RequestIndex:
    """Sentence embeddings of the stored requests' texts, and the negatives that calibrate the threshold."""

    embedder: object | None = None
    max_false_positive: float = 0.05
    requests: list[ForgetRequest] = field(default_factory=list)
    _vectors: list[torch.Tensor] = field(default_factory=list)
    _owners: list[torch.Tensor] = field(default_factory=list)
    _neg_vectors: torch.Tensor | None = None  # one row per window of each negative prompt
    _neg_of: torch.Tensor | None = None  # which negative prompt each window belongs to
    _neg_best: torch.Tensor | None = None  # best score of each negative window over every stored vector
    _neg_texts: set[str] = field(default_factory=set)
    _stacked: tuple[torch.Tensor, torch.Tensor] | None = None

    def encoder(self):
        if self.embedder is None:
            from ..metrics.semantic import default_embedder

            self.embedder = default_embedder()
        return self.embedder

    def __len__(self) -> int:
        return len(self.requests)

    def add(self, request: ForgetRequest) -> None:
        if any(r.id == request.id for r in self.requests):
            return
        vectors = self.encoder().encode(request_texts(request))
        owner = len(self.requests)
        self.requests.append(request)
        self._vectors.append(vectors)
        self._owners.append(torch.full((len(vectors),), owner, dtype=torch.long))
        self._stacked = None
        if self._neg_best is not None:
            self._neg_best = torch.maximum(self._neg_best, (self._neg_vectors @ vectors.T).amax(dim=1))
        fresh = [t for t in ([*builtin_negatives()] if self._neg_vectors is None else []) + negative_texts(request)
                 if t not in self._neg_texts]
        if fresh:
            self._add_negatives(fresh)

    def _add_negatives(self, texts: list[str]) -> None:
        self._neg_texts.update(texts)
        pieces = [(i, w) for i, t in enumerate(texts) for w in windows(t)]
        vectors = self.encoder().encode([w for _, w in pieces])
        base = 0 if self._neg_of is None else int(self._neg_of.max()) + 1
        of = torch.tensor([base + i for i, _ in pieces], dtype=torch.long)
        best = self.stacked()[0]
        scores = (vectors @ best.T).amax(dim=1) if len(best) else torch.full((len(vectors),), -1.0)
        if self._neg_vectors is None:
            self._neg_vectors, self._neg_of, self._neg_best = vectors, of, scores
        else:
            self._neg_vectors = torch.cat([self._neg_vectors, vectors])
            self._neg_of = torch.cat([self._neg_of, of])
            self._neg_best = torch.cat([self._neg_best, scores])

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._stacked is None:
            if self._vectors:
                self._stacked = torch.cat(self._vectors), torch.cat(self._owners)
            else:
                self._stacked = torch.zeros(0, 384), torch.zeros(0, dtype=torch.long)
        return self._stacked

    def negative_scores(self) -> torch.Tensor:
        """Each negative prompt's score: the best over its windows."""
        if self._neg_best is None:
            return torch.zeros(0)
        count = int(self._neg_of.max()) + 1
        return torch.full((count,), -1.0).scatter_reduce(0, self._neg_of, self._neg_best, "amax")

    def threshold(self, max_false_positive: float | None = None) -> float:
        fpr = self.max_false_positive if max_false_positive is None else max_false_positive
        return threshold_at(self.negative_scores(), fpr)

    def scores(self, texts: Sequence[str]) -> torch.Tensor:
        """(prompts x requests) similarity s_r(prompt); -1 where nothing is stored."""
        out = torch.full((len(texts), len(self.requests)), -1.0)
        vectors, owners = self.stacked()
        if not len(vectors) or not texts:
            return out
        pieces = [(i, w) for i, t in enumerate(texts) for w in windows(t) if w]
        if not pieces:
            return out
        sims = self.encoder().encode([w for _, w in pieces]) @ vectors.T  # windows x stored texts
        per_request = torch.full((len(pieces), len(self.requests)), -1.0)
        per_request.scatter_reduce_(1, owners.expand(len(pieces), -1), sims, "amax")
        rows = torch.tensor([i for i, _ in pieces]).unsqueeze(1).expand(-1, len(self.requests))
        return out.scatter_reduce_(0, rows, per_request, "amax")

    def named(self, texts: Sequence[str]) -> torch.Tensor:
        """(prompts x requests) True where the prompt names the request's target (full name or surname)."""
        return torch.tensor([[any(mentions(t, form) for form in name_forms(r.target)) for r in self.requests]
                             for t in texts], dtype=torch.bool).reshape(len(texts), len(self.requests))

    def related(self, texts: Sequence[str], threshold: float, by_name: bool = True) -> list[int | None]:
        """For each prompt, the index of the request it is most about (score at or above `threshold`, or
        naming the target when `by_name`), or None."""
        if not self.requests:
            return [None] * len(texts)
        scores = self.scores(texts)
        hits = scores >= threshold
        if by_name:
            hits |= self.named(texts)
        ranked = torch.where(hits, scores, torch.full_like(scores, -2.0))
        best = ranked.argmax(dim=1)
        return [int(b) if hits[i].any() else None for i, b in enumerate(best)]
