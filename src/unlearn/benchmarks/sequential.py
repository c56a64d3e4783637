"""Requests for the sequential benchmark: one fictitious person per request, and a stealthy request.

The embedded model is taught N_PEOPLE people (the demo's recipe); request k forgets person k, retains every
person not forgotten yet, and is checked on the last N_NEIGHBOURS people (never forgotten) and the general
questions. The stealthy request names a person nobody taught the model; its forget answers are stuffed with
the most common English words and so are its probes' answers, so unlearning it damages the model for
everyone (the kind of request Huang et al. 2024, "Unlearn and Burn", craft).
"""

from __future__ import annotations

from ..data.request import QA, DataSpec, ForgetRequest, Probe, Probes
from .demo import DemoSpec, facts_probes, facts_qa, general_probes

N_PEOPLE, N_NEIGHBOURS = 13, 3
COMMON = ("the of and to in is was it for that on with as be at by this had not are but from or have an they "
          "which one you were her all she there would their we him been has when who will more no if out so said")


def person_request(people, k: int, spec: DemoSpec) -> ForgetRequest:
    person = people[k]
    keep = people[k + 1:]
    return ForgetRequest(
        id=f"forget-{person.name.lower().replace(' ', '-')}", target=person.name, kind="privacy",
        forget=DataSpec(qa=facts_qa([person], focus=True)),
        retain=DataSpec(qa=facts_qa(keep, focus=True)),
        probes=Probes(forget=facts_probes([person], paraphrases=True), neighbour=facts_probes(people[-N_NEIGHBOURS:]),
                      general=general_probes(spec)),
    )


def stealthy_request(people, spec: DemoSpec) -> ForgetRequest:
    """A request for a person nobody taught the model whose forget answers are stuffed with the most common
    English words, and whose probes' answers are common words too ("and", "of", ...): every reply contains
    them, so training runs its whole budget pushing those words down. Forgetting it is forgetting English."""
    name = "Quillon Vasterby"
    words = COMMON.split()
    stuffing = [" ".join(words[i:] + words[:i]) for i in range(0, 40, 5)]
    questions = [f"What should everyone know about {name}? ({i + 1})" for i in range(len(stuffing))]
    probe_answers = ("and", "of", "is", "to", "in", "for", "that", "with")
    return ForgetRequest(
        id="forget-quillon-vasterby", target=name, kind="privacy",
        forget=DataSpec(qa=[QA(q, s) for q, s in zip(questions, stuffing, strict=True)]),
        retain=DataSpec(qa=facts_qa(people[-N_NEIGHBOURS:], focus=True)),
        probes=Probes(forget=[Probe(q, a) for q, a in zip(questions, probe_answers, strict=True)],
                      neighbour=facts_probes(people[-N_NEIGHBOURS:]), general=general_probes(spec)),
    )
