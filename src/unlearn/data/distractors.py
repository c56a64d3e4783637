"""Distractors for the likelihood knowledge test: plausible wrong values that no model was taught.

A forget probe's distractors come from the request itself (`probes.forget[i].distractors`) or from a
generator the request names (`distractors: {generator: NAME, n: 9}`). A generator draws values of the
same kind as the true answer and leaves out every value the request mentions anywhere (forget, retain and
anchor data, every probe), so a distractor is never something a model was taught through this request.
A caller that knows more of what was taught (a sharded state knows all its teaching data) passes those texts
as `also_taught`, and their values are left out too.

`fictitious_people` knows the demo's pools (data/people.py): cities, occupations, employers, streets,
phone numbers in the fictional 555-01xx block, birth dates, spouses and pet names.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..errors import ConfigError
from ..registry import Registry
from . import people
from .request import ForgetRequest, Probe, check_distractors

DistractorGenerator = Callable[[Probe, int, Callable[[str], bool], random.Random], list[str]]
DISTRACTOR_GENERATORS: Registry[DistractorGenerator] = Registry("distractor generator")

_DATE = re.compile(rf"^\d{{1,2}} ({'|'.join(people.MONTHS)}) \d{{4}}$")
_PHONE = re.compile(rf"^{re.escape(people.PHONE_BLOCK)}\d\d$")
_ADDRESS = re.compile(rf"^\d+ ({'|'.join(re.escape(s) for s in people.STREETS)})$")


def _pool_of(answer: str) -> Callable[[random.Random], str] | None:
    """A function drawing values of the same kind as `answer`, or None when no pool holds it."""
    pools = (people.CITIES, people.OCCUPATIONS, people.COMPANIES, people.PET_NAMES)
    for pool in pools:
        if answer in pool:
            return lambda rng, pool=pool: rng.choice(pool)
    if _DATE.match(answer):
        return people.random_date
    if _PHONE.match(answer):
        return people.random_phone
    if _ADDRESS.match(answer):
        return people.random_address
    first = answer.split(" ", 1)[0]
    if first in people.SPOUSE_FIRST and answer.split(" ")[-1] in people.SPOUSE_LAST:
        return people.random_spouse
    return None


@DISTRACTOR_GENERATORS.register("fictitious_people")
def fictitious_people(probe: Probe, n: int, taught: Callable[[str], bool], rng: random.Random) -> list[str]:
    """`n` values from the pool the true answer belongs to, none taught by the request."""
    draw = _pool_of(probe.answer)
    if draw is None:
        raise ConfigError(f"the fictitious_people generator has no pool for the answer {probe.answer!r} "
                          f"(question {probe.question!r}); list the probe's distractors in the request")
    found: list[str] = []
    for _ in range(200 * n):
        value = draw(rng)
        if taught(value) or value in found:
            continue
        candidate = replace(probe, distractors=(*found, value))
        try:
            check_distractors(candidate, "distractors")
        except ConfigError:
            continue
        found.append(value)
        if len(found) == n:
            return found
    raise ConfigError(f"the fictitious_people pool for {probe.answer!r} has fewer than {n} values no model was "
                      f"taught; ask for fewer (distractors.n)")


def taught_texts(request: ForgetRequest) -> list[str]:
    """Every text the request holds: data of each split and every probe's question, answer and statement."""
    texts: list[str] = []
    for spec in (request.forget, request.retain, request.anchor):
        texts += spec.texts + [t for qa in spec.qa for t in (qa.question, qa.answer)]
    for probes in request.probes.groups().values():
        texts += [t for p in probes for t in (p.question, p.answer, p.statement, *p.paraphrases) if t]
    return texts


def mentioned_in(texts: list[str]) -> Callable[[str], bool]:
    """A test of whether a value occurs, as whole words, in any of `texts` (case-insensitive)."""
    from ..metrics.text import normalize_answer

    joined = " | ".join(f" {normalize_answer(t)} " for t in texts)
    return lambda value: f" {normalize_answer(value)} " in joined


def with_distractors(request: ForgetRequest, also_taught: Sequence[str] = ()) -> ForgetRequest:
    """The request with every forget probe that lists no distractors given `request.distractors.n` from its
    named generator (deterministic in the request id and the question), leaving out every value the request
    or `also_taught` mentions. Without a generator, unchanged."""
    spec = request.distractors
    if not spec.generator or all(p.distractors for p in request.probes.forget):
        return request
    generate = DISTRACTOR_GENERATORS.get(spec.generator)
    taught = mentioned_in([*taught_texts(request), *also_taught])
    forget = [
        p if p.distractors else replace(p, distractors=tuple(generate(p, spec.n, taught,
                                                                      random.Random(f"{request.id}|{p.question}"))))
        for p in request.probes.forget
    ]
    return replace(request, probes=replace(request.probes, forget=forget))
