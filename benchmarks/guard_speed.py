"""How fast the refusal filter takes a new request and decides on a prompt, with up to 100 stored requests.

    python benchmarks/guard_speed.py [--requests 100] [--prompts 50]

Requests: one fictitious person each (the demo's generator: 8 facts, 8 probes with paraphrases). Adding
request k times what `GuardedModel.add_request` does for this guard: the shared index's `add` (embedding
the request's facts, updating the negatives) and the guard's own `add`. The per-prompt decision times the refusal filter's `reply` on one prompt at a time, as a
server sees them, over general questions (let through) and forget questions (refused): view extraction
is not included (it is a decode of the prompt's tokens). No language model runs here: only the
sentence-embedding model.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from unlearn.benchmarks.demo import facts_probes, facts_qa
from unlearn.data.general import general_knowledge
from unlearn.data.people import generate_people
from unlearn.data.request import DataSpec, ForgetRequest, Probes
from unlearn.guards import PromptView, RequestIndex, make_guard


class _Host:
    """What the refusal filter reads from a GuardedModel: the shared index."""

    def __init__(self, index: RequestIndex):
        self.index = index


def person_request(person, tag: str = "") -> ForgetRequest:
    """'Forget this person'; with `tag`, every question starts with it, so no text is shared with another request."""
    qa = [dataclasses.replace(q, question=tag + q.question) for q in facts_qa([person], focus=True)]
    probes = [dataclasses.replace(p, question=tag + p.question) for p in facts_probes([person], paraphrases=True)]
    return ForgetRequest(id=f"forget-{person.name.lower().replace(' ', '-')}", target=person.name, kind="privacy",
                         forget=DataSpec(qa=qa), probes=Probes(forget=probes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--prepare", action="store_true", help="embed the built-in negatives before the first add")
    parser.add_argument("--show", action="store_true", help="print the general prompts that were refused")
    parser.add_argument("--distinct", action="store_true", help="start each request's questions with its own "
                        "case number, so no text is shared between requests (the demo's questions are templates)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    people = generate_people(args.requests, seed=1)
    requests = [person_request(p, f"Case {i}: " if args.distinct else "") for i, p in enumerate(people)]
    index = RequestIndex()
    if args.prepare:
        index.prepare()  # embed the built-in negatives before timing, as `unlearn serve` does at start
    else:
        index.encoder().encode(["warm up"])  # load the embedding model before timing
    guard, host = make_guard("refusal_filter"), _Host(index)
    add_ms = []
    for request in requests:
        start = time.perf_counter()
        index.add(request)
        guard.add(request, host)
        add_ms.append(1000 * (time.perf_counter() - start))
    general = [g.question for g in general_knowledge()][: args.prompts]
    forget = [p.question for r in requests[-5:] for p in r.probes.forget][: args.prompts]
    timings = {}
    outcomes = {}
    for name, prompts in (("general", general), ("forget", forget)):
        times, refused = [], 0
        for prompt in prompts:
            start = time.perf_counter()
            blocked = guard.reply([PromptView((), prompt)], host)[0] is not None
            refused += blocked
            if blocked and args.show:
                print(f"refused ({name}): {prompt}")
            times.append(1000 * (time.perf_counter() - start))
        timings[name], outcomes[name] = times, refused / len(prompts)
    print(f"requests stored: {len(index)}; negatives: {len(index.negative_margins())}; delta {index.delta():.3f}")
    first = "built-in negatives embedded before" if args.prepare else "includes embedding the built-in negatives once"
    print(f"add request 1: {add_ms[0]:.1f} ms ({first}); request 2: {add_ms[1]:.1f} ms; request 10: {add_ms[9]:.1f} ms; "
          f"request {len(add_ms)}: {add_ms[-1]:.1f} ms; median of requests 2..{len(add_ms)}: "
          f"{statistics.median(add_ms[1:]):.1f} ms, max {max(add_ms[1:]):.1f} ms")
    for name, times in timings.items():
        ordered = sorted(times)
        print(f"per-prompt decision, {name} prompts ({len(times)}): mean {statistics.mean(times):.1f} ms, "
              f"p95 {ordered[int(0.95 * (len(ordered) - 1))]:.1f} ms; refused {outcomes[name]:.2f}")


if __name__ == "__main__":
    main()
