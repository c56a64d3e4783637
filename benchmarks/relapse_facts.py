"""Which earlier facts come back? Train one request of the sequential benchmark again on a state directory's
current model, and ask every applied request's forget probes in the clear.

    python benchmarks/relapse_facts.py --state DIR --request K [--seed S] [--method undial]
                                       [--anchor-replay N] [--set KEY=VALUE ...]

The ledger keeps earlier requests' probes sealed (salted hashes), so verification can say *that* request
j relapsed (e.g. 0.125: one of its 8 facts answered right again) but not *which* fact. This script rebuilds
the benchmark's requests (person k of the 13 taught people), trains request K (1-based, as in the curve)
with the state's technique, this call's settings and training seed S, with the same retain filter as
`unlearn apply` (items an applied request asked to forget are left out), and prints each applied request's
probe answered right on the trained model: a fact unique to that person is hidden knowledge coming back,
a value other people share may be a guess. Nothing is written: the state directory is only read.
Give the settings of the run that made the state directory (method, --anchor-replay, --set).
"""

from __future__ import annotations

import argparse

from unlearn.benchmarks.demo import DemoSpec, demo_unlearn_config, replay_qa, taught_model
from unlearn.benchmarks.sequential import N_PEOPLE, person_request
from unlearn.config import RunConfig, with_overrides
from unlearn.data.people import generate_people
from unlearn.metrics.generation import generate_answers
from unlearn.metrics.probes import probe_accuracy
from unlearn.models.loading import load_model
from unlearn.requests.apply import SequenceRunner
from unlearn.requests.forgotten import without_forgotten
from unlearn.requests.state import StateDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", required=True, help="a state directory made by benchmarks/sequential_requests.py")
    parser.add_argument("--request", type=int, required=True, help="request number K (1-10) to train again")
    parser.add_argument("--seed", type=int, default=0, help="training seed (try t of `--tries` used seed t - 1)")
    parser.add_argument("--method", default="undial")
    parser.add_argument("--anchor-replay", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    spec = DemoSpec(n_people=N_PEOPLE)
    people = generate_people(N_PEOPLE, spec.seed)
    if not 1 <= args.request <= N_PEOPLE - 3:
        parser.error(f"--request is 1..{N_PEOPLE - 3}")
    anchor = replay_qa(spec)[: args.anchor_replay] if args.anchor_replay else []
    requests = [person_request(people, k, spec, anchor) for k in range(N_PEOPLE - 3)]
    config = with_overrides(RunConfig, demo_unlearn_config(args.method), args.overrides)
    base, tokenizer = load_model(str(taught_model("deployed", spec)), "float32")
    for p in base.parameters():
        p.requires_grad_(False)
    with StateDir(args.state) as state:
        runner = SequenceRunner(state, base.eval(), tokenizer, config, progress=True, echo=print)
        applied = [e.id for e in state.ledger.entries("applied")]
        request = requests[args.request - 1]
        if request.id in applied:
            parser.error(f"{request.id} is applied in {args.state}: pick a request that is not")
        trained, dropped = without_forgotten(request, state.ledger.forgotten(applied), runner.salt)
        tensors, info = runner._train(trained, runner.training_start(), args.seed)
        model = state.assemble(base, extra=tensors).eval()
    print(f"trained {request.id}: {info['steps']} steps, seed {args.seed}, left out {dropped}")
    earlier_requests = [r for r in requests if r.id in applied]
    questions = [p.question for r in earlier_requests for p in r.probes.forget]
    answers = iter(g.text for g in generate_answers(model, tokenizer, questions, config.eval.batch_size,
                                                    config.eval.max_new_tokens))  # one batched generation
    for earlier in earlier_requests:
        probes = earlier.probes.forget
        texts = [next(answers) for _ in probes]
        accuracy = probe_accuracy(texts, [p.answer for p in probes], [p.aliases for p in probes])
        for probe, text, right in zip(probes, texts, accuracy.per_example, strict=True):
            if right:
                shared = [p.name for p in people if p.name != earlier.target
                          and probe.answer.lower() in " ".join(p.attributes.values()).lower()]
                print(f"back: {earlier.id}: {probe.question} -> {text.strip()[:70]!r} (answer {probe.answer!r}; "
                      + (f"also true of {', '.join(shared)})" if shared else "unique to this person)"))
        print(f"{earlier.id}: {accuracy.value:.3f}")


if __name__ == "__main__":
    main()
