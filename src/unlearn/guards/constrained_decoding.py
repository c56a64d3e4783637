"""Constrained decoding: the tokens that would spell out a forgotten answer are penalised or banned.

The banned phrases of a request are its forget probes' answers and aliases and the focus spans of its
forget QA pairs (at least `min_chars` characters), each in the spellings a reply may use (as written,
lower case, capitalised, title case; with and without a leading space), as token sequences s_1..s_n. At every answer
position, with c the tokens so far (prompt and reply):

    logit(s_n) -= penalty   for every phrase s with c ending in s_1..s_{n-1}

so a phrase can never be completed (penalty 1e4: banned), while its first tokens, often common words
("a" of "a baker"), stay free; a one-token phrase is banned everywhere. The ban on s_n covers every token
whose string starts with s_n's, so the phrase cannot be completed with a longer word either ("geneticists"
for "geneticist": the route the audit found). Other tokenizations of the same letters are not covered. With `gate`, only the phrases of the request the classifier relates the prompt to
are used; by default every stored request's phrases apply to every prompt, so rewording the question
does not get past it.

Decoding-time suppression of sensitive outputs: the output-filter guardrail of Thaker et al. 2024
(arXiv 2403.03329), in the spirit of the bad-words constraint of constrained decoding (Hokamp & Liu 2017,
arXiv 1704.07138). The phrase list and the spellings are ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from .base import GUARDS, Decoder, Guard, PromptView

Trie = dict[tuple[int, ...], set[int]]


def banned_phrases(request, min_chars: int = 3) -> list[str]:
    phrases = [a for p in request.probes.forget for a in (p.answer, *p.aliases)]
    phrases += [f for qa in request.forget.qa for f in qa.focus]
    return list(dict.fromkeys(p.strip() for p in phrases if len(p.strip()) >= min_chars))


def spellings(phrase: str) -> list[str]:
    lower = phrase.lower()
    forms = dict.fromkeys([phrase, lower, phrase[:1].upper() + phrase[1:], lower[:1].upper() + lower[1:],
                           phrase.title()])
    return [f for form in forms for f in (form, " " + form)]


def phrase_trie(token_sequences: list[list[int]], extensions: dict[int, set[int]] | None = None) -> Trie:
    """All but the last token of each phrase (possibly empty) -> the last tokens that would complete it, and
    `extensions[last]`: the tokens that spell the last one and go on ("ists" for "ist")."""
    trie: Trie = {}
    for seq in token_sequences:
        trie.setdefault(tuple(seq[:-1]), set()).update({seq[-1], *(extensions or {}).get(seq[-1], ())})
    return trie


class TokenPrefixes:
    """The vocabulary's token strings sorted, to find every token that starts with a given one."""

    def __init__(self, tokenizer):
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.sorted = sorted((piece, i) for i, piece in enumerate(pieces) if piece is not None)
        self.keys = [piece for piece, _ in self.sorted]
        self.pieces = pieces

    def extending(self, token: int) -> set[int]:
        """Ids of the tokens whose string starts with `token`'s (itself included)."""
        import bisect

        piece = self.pieces[token]
        if piece is None:
            return {token}
        out, at = set(), bisect.bisect_left(self.keys, piece)
        while at < len(self.keys) and self.keys[at].startswith(piece):
            out.add(self.sorted[at][1])
            at += 1
        return out


def banned_next(context: list[int], trie: Trie, longest: int) -> set[int]:
    """Tokens the trie bans after `context`: those completing a phrase whose other tokens `context` ends with."""
    out = set(trie.get((), ()))
    for length in range(1, min(longest, len(context)) + 1):
        out |= trie.get(tuple(context[-length:]), set())
    return out


class PhraseBan(Decoder):
    """Penalises the tokens that complete a banned phrase; `tries[v]` is the trie of view v."""

    def __init__(self, tries: list[Trie], penalty: float):
        self.tries, self.penalty = tries, penalty
        self.longest = max((max((len(k) for k in t), default=0) for t in tries), default=0)

    def _penalise(self, row: torch.Tensor, context: list[int], trie: Trie) -> None:
        banned = banned_next(context, trie, self.longest)
        if banned:
            row[list(banned)] -= self.penalty

    def step(self, input_ids, scores, owners):
        scores = scores.clone()
        for i, owner in enumerate(owners):
            if self.tries[owner]:
                self._penalise(scores[i], input_ids[i].tolist(), self.tries[owner])
        return scores

    def teacher_forced(self, input_ids, attention_mask, logits, starts, first):
        logits = logits.clone()
        for i in range(len(input_ids)):
            trie = self.tries[i]
            if not trie:
                continue
            ids = input_ids[i][attention_mask[i].bool()].tolist()
            for position in range(max(starts[i], first), len(ids)):
                self._penalise(logits[i, position - first], ids[: position + 1], trie)
        return logits


@GUARDS.register("constrained_decoding")
@dataclass
class ConstrainedDecoding(Guard):
    """Penalises the tokens that would spell a stored request's answers."""

    summary = "ban (or penalise) the tokens that spell the forgotten answers while decoding"

    penalty: float = 1e4  # subtracted from the logit; 1e4 bans
    gate: bool = False  # True: only the phrases of the request the prompt is about
    min_chars: int = 3
    max_false_positive: float = 0.05
    phrases: dict[str, list[str]] = field(default_factory=dict)  # per request id, filled by `add`

    def validate(self) -> None:
        if self.penalty <= 0:
            raise ConfigError(f"constrained_decoding: penalty must be > 0, got {self.penalty}")
        if self.min_chars < 1:
            raise ConfigError(f"constrained_decoding: min_chars must be >= 1, got {self.min_chars}")

    def add(self, request, host) -> None:
        if request.id not in self.phrases:
            self.phrases[request.id] = banned_phrases(request, self.min_chars)
            self.__dict__["_tries"] = {}

    def trie(self, request_ids: list[str], tokenizer) -> Trie:
        key = "\x00".join(request_ids)
        cache = self.__dict__.setdefault("_tries", {})
        if key not in cache:
            sequences = [seq for rid in request_ids for p in self.phrases.get(rid, []) for s in spellings(p)
                         if (seq := tokenizer(s, add_special_tokens=False)["input_ids"])]
            prefixes = self.__dict__.get("_prefixes")
            if prefixes is None:
                prefixes = self.__dict__["_prefixes"] = TokenPrefixes(tokenizer)
            cache[key] = phrase_trie(sequences, {seq[-1]: prefixes.extending(seq[-1]) for seq in sequences})
        return cache[key]

    def decoder(self, views: list[PromptView], host) -> Decoder | None:
        requests = host.index.requests
        if not requests or not any(self.phrases.get(r.id) for r in requests):
            return None
        if not self.gate:
            everything = self.trie([r.id for r in requests], host.tokenizer)
            return PhraseBan([everything] * len(views), self.penalty)
        related = host.index.related([v.text for v in views], self.max_false_positive)
        return PhraseBan([self.trie([requests[r].id], host.tokenizer) if r is not None else {} for r in related],
                         self.penalty)

    def state(self) -> dict:
        return {"phrases": dict(self.phrases)}
