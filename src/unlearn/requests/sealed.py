"""Sealed probes: a forget probe whose answer is kept only as a salted hash.

The ledger must re-ask every applied request's questions later (does the fact come back?) without
keeping the answers it was asked to delete. A probe counts as answered when the answer is a whole-word span
of the generation, both in the judge's form (`metrics.text.contains_answer`: numbers, accents and dates
written any way); the same test works on hashes: hash every run of n consecutive words of the generation, n
being the answer's word count, and look for the answer's hash. An answer that is a long number alone (a phone
number) is also sealed as its digits, and every number the generation writes (`numbers_written`) is hashed
and looked for. The result is identical to `contains_answer` on the clear text (in scripts written with spaces
between words); probes sealed before numbers were sealed match only with the answer's own separators. Probes
sealed before the judge's form existed hold hashes of the plain normalised answer (`normalize_answer`); the
generation is searched in that form too, so they keep matching.

A hash hides the answer from anyone reading the ledger, but a short answer from a small set (a city, a
year) can still be found by hashing candidates with the state directory's salt: keep the state directory
as private as the model.
"""

from __future__ import annotations

import hashlib

from ..data.request import Probe
from ..metrics.text import answer_number, judged_form, normalize_answer, numbers_written


def answer_hash(normalised: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}\x00{normalised}".encode()).hexdigest()


def seal_probe(probe: Probe, salt: str) -> dict:
    """{'question', 'answers': [[word count, hash], ...], 'numbers': [hash, ...]} for the answer and each alias;
    'numbers' holds the digits of those that are a long number alone."""
    answers, numbers = [], []
    for answer in probe.answers:
        gold = judged_form(answer)
        if gold:
            answers.append([len(gold.split()), answer_hash(gold, salt)])
        number = answer_number(answer)
        if number:
            numbers.append(answer_hash(number, salt))
    return {"question": probe.question, "answers": answers, "numbers": numbers}


def sealed_correct(generation: str, sealed: dict, salt: str) -> bool:
    """True when the generation contains the sealed answer (or an alias) as a whole-word span."""
    forms = {judged_form(generation), normalize_answer(generation)}
    for words in (form.split() for form in forms):
        for n, digest in sealed["answers"]:
            for start in range(len(words) - n + 1):
                if answer_hash(" ".join(words[start:start + n]), salt) == digest:
                    return True
    numbers = set(sealed.get("numbers", ()))
    return bool(numbers) and any(answer_hash(n, salt) in numbers for n in numbers_written(generation))
