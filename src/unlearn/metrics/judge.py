"""The judge: was a probe answered? One rule for every application that asks it (evaluation of a run, the demo
checks, early stopping, the audit and its attacks, the ledger, the embedding-corruption guard's calibration).

A reply answers a probe when, for the gold answer or one of its aliases,
  - the normalised answer is a whole-word span of the normalised reply (SQuAD-style normalisation), or
  - the reply's ROUGE-L recall against the answer (`rouge_score`, stemmed) reaches `rouge_threshold`
    (0.8 by default: the answer's words, in order, with at most a fifth of them missing or inflected); words of
    other scripts than ASCII count too (accents set aside), where `rouge_score` alone would drop them.
Both sides are first brought to the judge's form (`metrics.text.judged_form`: case, punctuation, articles, digit
grouping, accents, number words, the way a date is written and address abbreviations set aside); an answer
that is a long number alone (a phone number) is also found with its digits grouped another way.
`rouge_threshold=None` is containment alone: what the ledger can test on sealed (hashed) answers of earlier
requests, which keep no clear text (requests/sealed.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from .text import contains_answer, judge_rouge_recall

ROUGE_THRESHOLD = 0.8
# bump when what counts as answered changes: cached judgements (the demo's reference evaluations, the audit's
# reference cache) are keyed by it and measured rows record it (1: containment only; 2: containment or ROUGE-L
# recall; 3: dates written any common way; 4: address abbreviations, long numbers with any separators)
JUDGE_VERSION = "4"


def answered(reply: str, answers: Sequence[str], rouge_threshold: float | None = ROUGE_THRESHOLD) -> bool:
    """True when `reply` gives one of `answers` (the gold answer and its aliases) by the rule above."""
    if rouge_threshold is not None and not 0.0 < rouge_threshold <= 1.0:
        raise ValueError(f"rouge_threshold must be in (0, 1] or None (containment only), got {rouge_threshold}")
    return any(
        contains_answer(reply, answer) or (rouge_threshold is not None and judge_rouge_recall(reply, answer) >= rouge_threshold)
        for answer in answers if answer
    )


def refusal_collisions(probes: Sequence, rouge_threshold: float | None = ROUGE_THRESHOLD) -> list[str]:
    """One warning per probe answer (or alias) that a plain refusal would be judged to give: for such an answer
    ("no", "none", "sorry") a model that declines counts as answering, so forgetting cannot be measured."""
    from ..data.refusals import REFUSALS

    out = []
    for probe in probes:
        for answer in probe.answers:
            refusal = next((r for r in REFUSALS if answered(r, [answer], rouge_threshold)), None)
            if refusal is not None:
                out.append(f"the answer {answer!r} to {probe.question!r} is found in the refusal {refusal!r}: a "
                           f"model that declines would count as answering it; give a more specific answer")
    return out
