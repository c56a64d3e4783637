"""The prompt classifier every gated guard shares: which stored request, if any, is a prompt about?

A prompt that names a stored request's target (full name or surname, whole words) is about it. The rest of
the classifier is for prompts that do not name the target (they describe the person, give their facts,
ask through another fact). It compares sentence embeddings (all-MiniLM-L6-v2, metrics/semantic.py) of
two pools of texts:

  - positives of request r: its target, its forget answers as written and with the target's name replaced
    by "this person", and the sentences of its forget texts (likewise). Its questions are left out: they
    share their form with questions about anyone else, and a question that names the target is caught
    by the name;
  - negatives, shared: 310 built-in everyday prompts (data/replay_prompts.py), built-in biography
    questions about other people (when was X born, where does X work, ...) and every request's retain
    questions: what must not fire.

With cos the cosine of embeddings and the windows of a prompt its whole text and each sentence and line
(a forgotten fact hidden in a longer prompt still scores high):

    s_r(prompt)   = max over windows w, positives t of r:  cos(w, t)
    s_neg(prompt) = max over windows w, negatives u:       cos(w, u)
    fires for r  <=>  s_r >= floor  and  s_r - s_neg >= delta      (or the prompt names r's target)

The margin delta is calibrated leave-one-out: each negative prompt's margin against the rest of the pool;
delta is the (1 - max_false_positive) quantile of those margins, and at least 0 (the nearest stored text
must be a positive). Adding a request embeds its own texts (about 20 for a person with 8 facts) and
updates each negative's best score with the new vectors only, so the 100th request costs what the first did.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..attacks.base import anonymise, mentions, name_forms
from ..data.request import ForgetRequest

MAX_TEXT_SENTENCES = 64
DEFAULT_FLOOR = 0.4
# Biography questions about people who are not stored requests (negatives written for this classifier).
OTHER_PEOPLE = ("John Smith", "Maria Garcia", "Wei Chen", "Priya Raghunathan", "Chidi Okonkwo", "Beatriz Halvorsen")
BIOGRAPHY_QUESTIONS = (
    "When was {n} born?", "Where was {n} born?", "What does {n} do for a living?", "Which company does {n} work for?",
    "Where does {n} live?", "What is {n}'s phone number?", "Who is {n} married to?", "What is the name of {n}'s pet?",
    "How old is {n}?", "Where did {n} study?", "What is {n}'s email address?", "Who are {n}'s parents?",
    "What is {n}'s nationality?", "What is {n} known for?", "Where does {n} work?", "What are {n}'s hobbies?",
    "What is {n}'s home address?", "What is {n}'s date of birth?", "What is {n}'s job?", "Does {n} have children?",
    "Which city does {n} live in?", "What car does {n} drive?", "Who are {n}'s friends?", "Does {n} have a pet?",
)
_SPLIT = re.compile(r"(?<=[.?!])\s+|\n+")


def windows(text: str, min_words: int = 3) -> list[str]:
    """The whole text and each of its sentences and lines with at least `min_words` words."""
    parts = [p.strip() for p in _SPLIT.split(text) if len(p.split()) >= min_words]
    return list(dict.fromkeys([text.strip(), *parts]))


def request_texts(request: ForgetRequest) -> list[str]:
    """The positives: the target, the forget answers and text sentences, each also with the target unnamed."""
    facts = [qa.answer for qa in request.forget.qa]
    facts += [s for t in request.forget.texts for s in windows(t)[1:] or [t]][:MAX_TEXT_SENTENCES]
    texts = [request.target] + [t for fact in facts for t in (fact, anonymise(fact, request.target, request.kind))]
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))


def negative_texts(request: ForgetRequest) -> list[str]:
    """Prompts that must not fire because of this request: its retain questions."""
    return list(dict.fromkeys(qa.question for qa in request.retain.qa))


def builtin_negatives() -> list[str]:
    """Everyday prompts (none asks what the general-knowledge probes ask, so those stay a fair test of what
    the classifier refuses) and biography questions about other people."""
    from ..data.replay_prompts import replay_prompts

    return list(replay_prompts()) + [q.format(n=n) for q in BIOGRAPHY_QUESTIONS for n in OTHER_PEOPLE]


def quantile_margin(margins: torch.Tensor, max_false_positive: float) -> float:
    """The smallest margin at most `max_false_positive` of `margins` reach (margins >= it fire), and >= 0."""
    if margins.numel() == 0:
        return 0.0
    return max(float(torch.quantile(margins.float(), 1.0 - max_false_positive)) + 1e-4, 0.0)


@dataclass
class RequestIndex:
    """Sentence embeddings of the stored requests' texts (positives) and of the negatives."""

    embedder: object | None = None
    max_false_positive: float = 0.05
    floor: float = DEFAULT_FLOOR
    requests: list[ForgetRequest] = field(default_factory=list)
    _pos: list[torch.Tensor] = field(default_factory=list)
    _owners: list[torch.Tensor] = field(default_factory=list)
    _neg: torch.Tensor | None = None  # one row per window of each negative prompt
    _neg_of: torch.Tensor | None = None  # which negative prompt each window belongs to
    _neg_pos: torch.Tensor | None = None  # per negative window: best cosine to any positive
    _neg_other: torch.Tensor | None = None  # per negative window: best cosine to another prompt's negative
    _neg_texts: set[str] = field(default_factory=set)
    _stacked: tuple[torch.Tensor, torch.Tensor] | None = None
    _last_scores: tuple[tuple, tuple[torch.Tensor, torch.Tensor]] | None = None  # every gated guard asks the same

    def encoder(self):
        if self.embedder is None:
            from ..metrics.semantic import default_embedder

            self.embedder = default_embedder()
        return self.embedder

    def __len__(self) -> int:
        return len(self.requests)

    def prepare(self) -> None:
        """Embed the built-in negatives now (otherwise the first `add` does), so that adding the first
        request is as fast as adding any other."""
        if self._neg is None:
            texts = builtin_negatives()
            pieces = [(i, w) for i, t in enumerate(texts) for w in windows(t)]
            self._add_negatives(texts, pieces, self.encoder().encode([w for _, w in pieces]))

    def add(self, request: ForgetRequest) -> None:
        """Store a request (a known id is kept as it was)."""
        if any(r.id == request.id for r in self.requests):
            return
        texts = request_texts(request)
        negatives = [t for t in ([*builtin_negatives()] if self._neg is None else []) + negative_texts(request)
                     if t not in self._neg_texts]
        pieces = [(i, w) for i, t in enumerate(negatives) for w in windows(t)]
        vectors = self.encoder().encode(texts + [w for _, w in pieces])
        positives, fresh = vectors[:len(texts)], vectors[len(texts):]
        self.requests.append(request)
        self._pos.append(positives)
        self._owners.append(torch.full((len(positives),), len(self.requests) - 1, dtype=torch.long))
        self._stacked = None
        if self._neg is not None:
            self._neg_pos = torch.maximum(self._neg_pos, (self._neg @ positives.T).amax(dim=1))
        if pieces:
            self._add_negatives(negatives, pieces, fresh)

    def _add_negatives(self, texts: list[str], pieces: list[tuple[int, str]], vectors: torch.Tensor) -> None:
        self._neg_texts.update(texts)
        base = 0 if self._neg_of is None else int(self._neg_of.max()) + 1
        of = torch.tensor([base + i for i, _ in pieces], dtype=torch.long)
        positives = self.stacked()[0]
        to_pos = (vectors @ positives.T).amax(dim=1) if len(positives) else torch.full((len(vectors),), -1.0)
        within = vectors @ vectors.T
        within[of.unsqueeze(1) == of.unsqueeze(0)] = -1.0  # leave each prompt's own windows out
        to_other = within.amax(dim=1)
        if self._neg is None:
            self._neg, self._neg_of, self._neg_pos, self._neg_other = vectors, of, to_pos, to_other
            return
        across = vectors @ self._neg.T
        self._neg_other = torch.maximum(self._neg_other, across.amax(dim=0))
        self._neg = torch.cat([self._neg, vectors])
        self._neg_of = torch.cat([self._neg_of, of])
        self._neg_pos = torch.cat([self._neg_pos, to_pos])
        self._neg_other = torch.cat([self._neg_other, torch.maximum(to_other, across.amax(dim=1))])

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._stacked is None:
            dim = self._pos[0].shape[1] if self._pos else 1
            self._stacked = ((torch.cat(self._pos), torch.cat(self._owners)) if self._pos
                             else (torch.zeros(0, dim), torch.zeros(0, dtype=torch.long)))
        return self._stacked

    def negative_margins(self) -> torch.Tensor:
        """Each negative prompt's leave-one-out margin: best over its windows of (best positive - best other
        negative)."""
        if self._neg is None:
            return torch.zeros(0)
        count = int(self._neg_of.max()) + 1
        margins = self._neg_pos - self._neg_other
        return torch.full((count,), -2.0).scatter_reduce(0, self._neg_of, margins, "amax")

    def delta(self, max_false_positive: float | None = None) -> float:
        fpr = self.max_false_positive if max_false_positive is None else max_false_positive
        return quantile_margin(self.negative_margins(), fpr)

    def scores(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompts x requests) s_r and the margin s_r - s_neg (the best over the prompt's windows); -1 and
        -2 where nothing is stored. The last answer is kept: the guards of one call ask about the same prompts."""
        key = (tuple(texts), len(self.requests), 0 if self._neg is None else len(self._neg))
        if self._last_scores is None or self._last_scores[0] != key:
            self._last_scores = key, self._scores(texts)
        best, margin = self._last_scores[1]
        return best.clone(), margin.clone()

    def _scores(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        n, r = len(texts), len(self.requests)
        best, margin = torch.full((n, r), -1.0), torch.full((n, r), -2.0)
        positives, owners = self.stacked()
        pieces = [(i, w) for i, t in enumerate(texts) for w in windows(t) if w]
        if not len(positives) or not pieces:
            return best, margin
        vectors = self.encoder().encode([w for _, w in pieces])
        per_request = torch.full((len(pieces), r), -1.0)
        per_request.scatter_reduce_(1, owners.expand(len(pieces), -1), vectors @ positives.T, "amax")
        negative = (vectors @ self._neg.T).amax(dim=1, keepdim=True) if self._neg is not None else -1.0
        rows = torch.tensor([i for i, _ in pieces]).unsqueeze(1).expand(-1, r)
        best.scatter_reduce_(0, rows, per_request, "amax")
        margin.scatter_reduce_(0, rows, per_request - negative, "amax")
        return best, margin

    def named(self, texts: Sequence[str]) -> torch.Tensor:
        """(prompts x requests) True where the prompt names the request's target (full name or surname)."""
        return torch.tensor([[any(mentions(t, form) for form in name_forms(r.target, r.kind)) for r in self.requests]
                             for t in texts], dtype=torch.bool).reshape(len(texts), len(self.requests))

    def related(self, texts: Sequence[str], max_false_positive: float | None = None, by_name: bool = True,
                delta: float | None = None) -> list[int | None]:
        """For each prompt, the index of the request it is most about, or None."""
        if not self.requests:
            return [None] * len(texts)
        best, margin = self.scores(texts)
        delta = self.delta(max_false_positive) if delta is None else delta
        hits = (best >= self.floor) & (margin >= delta)
        if by_name:
            hits |= self.named(texts)
        ranked = torch.where(hits, margin, torch.full_like(margin, -3.0))
        choice = ranked.argmax(dim=1)
        return [int(c) if hits[i].any() else None for i, c in enumerate(choice)]
