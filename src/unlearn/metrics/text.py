"""Text normalisation and answer matching (containment, ROUGE-L as `rouge_score` computes it)."""

from __future__ import annotations

import re
import string
from functools import lru_cache

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and English articles, collapse whitespace (SQuAD-style)."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_answer(generation: str, answer: str) -> bool:
    """True when the normalised answer appears as a whole-word span of the normalised generation."""
    gold = normalize_answer(answer)
    if not gold:
        return False
    return f" {gold} " in f" {normalize_answer(generation)} "


@lru_cache(maxsize=2)
def _rouge_scorer(stemmer: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)


def rouge_l(generation: str, answer: str, stemmer: bool = True) -> tuple[float, float, float]:
    """ROUGE-L (precision, recall, F1) of `generation` against `answer`, scored by `rouge_score`; with Porter
    stemming by default (TOFU), without it for MUSE."""
    score = _rouge_scorer(stemmer).score(answer, generation)["rougeL"]
    return score.precision, score.recall, score.fmeasure
