"""Text normalisation and answer matching (containment, ROUGE-L as `rouge_score` computes it)."""

from __future__ import annotations

import re
import string
import unicodedata
from functools import lru_cache

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"',
                            "\u201d": '"', "\u201f": '"', "\u2033": '"', "\u2010": "-", "\u2011": "-", "\u2012": "-",
                            "\u2013": "-", "\u2014": "-", "\u2212": "-"})


def normalise_spelling(text: str) -> str:
    """What two spellings of one text share: Unicode compatibility form (NFKC), no invisible format characters
    (zero-width spaces, joiners), straight quotes and hyphens for typographic ones, lower case, single spaces.
    Used to recognise a taught item in a request (fingerprints of exact/data.py and requests/forgotten.py)."""
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return " ".join(text.lower().split())


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and English articles, collapse whitespace (SQuAD-style); Unicode text is first
    brought to its compatibility form (NFKC) without invisible format characters, and any Unicode punctuation
    (dashes, curly quotes) counts as punctuation."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text
                       if unicodedata.category(c) != "Cf")
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
