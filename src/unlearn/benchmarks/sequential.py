"""Requests for the sequential benchmark: one fictitious person per request, and a stealthy request.

The embedded model is taught N_PEOPLE people (the demo's recipe); request k forgets person k, retains every
person not forgotten yet (plus `spec.retain_replay` of the demo's general replay answers), and is checked
on the last N_NEIGHBOURS people (never forgotten) and the general questions. The stealthy request names a
person nobody taught the model; its forget answers are stuffed with the most common English words and so
are its probes' answers, so unlearning it damages the model for everyone (the kind of request Huang et al.
2024, "Unlearn and Burn", craft).
"""

from __future__ import annotations

from ..data.people import Person, generate_people
from ..data.request import QA, DataSpec, ForgetRequest, Probe, Probes
from .demo import DemoSpec, facts_probes, facts_qa, general_probes, replay_qa

N_PEOPLE, N_NEIGHBOURS = 13, 3
COMMON = ("the of and to in is was it for that on with as be at by this had not are but from or have an they "
          "which one you were her all she there would their we him been has when who will more no if out so said")
FILLER_CODES = ("zvorquent", "plixadrine", "quembolt", "draxifune", "wupplestrand", "krozzimeth", "yandrivox", "glimperzoth")


def person_request(people, k: int, spec: DemoSpec, anchor: list[QA] | None = None) -> ForgetRequest:
    """Forget person k; `anchor`: general QA whose distributions training holds (ForgetRequest.anchor)."""
    person = people[k]
    keep = people[k + 1:]
    replay = replay_qa(spec)[: spec.retain_replay] if spec.retain_replay else []
    return ForgetRequest(
        id=f"forget-{person.name.lower().replace(' ', '-')}", target=person.name, kind="privacy",
        forget=DataSpec(qa=facts_qa([person], focus=True)),
        retain=DataSpec(qa=facts_qa(keep, focus=True) + replay),
        probes=Probes(forget=facts_probes([person], paraphrases=True), neighbour=facts_probes(people[-N_NEIGHBOURS:]),
                      general=general_probes(spec)),
        anchor=DataSpec(qa=list(anchor or [])),
    )


def untaught_people(people: list[Person], n: int, seed: int = 101) -> list[Person]:
    """`n` people drawn like the taught ones (same attribute pools) but never taught: no full name in `people`.
    Their facts measure the chance level of the forget probes: how many of a person's facts a model answers
    right without ever having learnt that person (closed pools such as cities, jobs and pets make some
    guesses right)."""
    seen = {p.name for p in people}
    found: list[Person] = []
    while len(found) < n:
        for person in generate_people(len(people), seed):
            if person.name not in seen:
                seen.add(person.name)
                found.append(person)
        seed += 1
    return found[:n]


def stealthy_request(people, spec: DemoSpec, retain: str = "neighbours", anchor: list[QA] | None = None) -> ForgetRequest:
    """A request for a person nobody taught the model whose forget answers are stuffed with the most common
    English words, and whose probes' answers are common words too ("and", "of", ...): every reply contains
    them, so training runs its whole budget pushing those words down. Forgetting it is forgetting English.

    retain: 'neighbours' (the last N_NEIGHBOURS people's facts, which also protect the model) or 'own' (what an
    attacker who writes the whole request would send: filler code words that anchor nothing users rely on).
    anchor: general QA the operator adds (as for every request it composes)."""
    if retain not in ("neighbours", "own"):
        raise ValueError(f"retain must be 'neighbours' or 'own', not {retain!r}")
    name = "Quillon Vasterby"
    words = COMMON.split()
    stuffing = [" ".join(words[i:] + words[:i]) for i in range(0, 40, 5)]
    questions = [f"What should everyone know about {name}? ({i + 1})" for i in range(len(stuffing))]
    probe_answers = ("and", "of", "is", "to", "in", "for", "that", "with")
    retain_qa = facts_qa(people[-N_NEIGHBOURS:], focus=True) if retain == "neighbours" else [
        QA(f"What is code word {i + 1} of {name}?", f"Code word {i + 1} of {name} is {code}.")
        for i, code in enumerate(FILLER_CODES)]
    return ForgetRequest(
        id="forget-quillon-vasterby" if retain == "neighbours" else "forget-quillon-vasterby-own-retain",
        target=name, kind="privacy",
        forget=DataSpec(qa=[QA(q, s) for q, s in zip(questions, stuffing, strict=True)]),
        retain=DataSpec(qa=retain_qa),
        probes=Probes(forget=[Probe(q, a) for q, a in zip(questions, probe_answers, strict=True)],
                      neighbour=facts_probes(people[-N_NEIGHBOURS:]), general=general_probes(spec)),
        anchor=DataSpec(qa=list(anchor or [])),
    )
