"""Ten removal requests in a row on the embedded model, through `unlearn apply`: sustainability, cost, defence.

    python benchmarks/sequential_requests.py [--configs npo:sequential,npo:lora,grad_diff:sequential]
                                             [--requests 10] [--no-stealthy] [--json sequential.json]
                                             [--set KEY=VALUE ...]

The embedded model is taught 13 fictitious people with the demo's recipe (cached under
$UNLEARN_HOME/demo). Request k asks to forget person k (k = 1..10); its retain set is every person not
forgotten yet, its neighbour probes the last three people (never forgotten), its general probes the
built-in general-knowledge questions. After request 5 comes a "stealthy" request: it names a person nobody
taught the model, its forget answers are stuffed with the most common English words and its probes are
general questions wearing that name, so unlearning it damages the model for everyone; verification must
reject it.

Each configuration (METHOD:TECHNIQUE) gets its own state directory. Read from the ledger after every
request: its status, its own forget accuracy, the worst forget accuracy of the earlier requests (relapse),
neighbour and general accuracy, seconds per request, and the checkpoint storage.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from unlearn.benchmarks.demo import (
    DemoSpec,
    demo_unlearn_config,
    facts_probes,
    facts_qa,
    general_probes,
    taught_model,
)
from unlearn.config import RunConfig, SequenceConfig, apply_overrides, from_dict
from unlearn.data.people import generate_people
from unlearn.data.request import QA, DataSpec, ForgetRequest, Probe, Probes
from unlearn.requests import apply_requests
from unlearn.requests.state import StateDir

N_PEOPLE, N_NEIGHBOURS = 13, 3
COMMON = ("the of and to in is was it for that on with as be at by this had not are but from or have an they "
          "which one you were her all she there would their we him been has when who will more no if out so said")
# LoRA adapters need a larger step than full-layer fine-tuning (Hu et al., 2022 use 2e-4 and above).
TECHNIQUE_SETTINGS = {"lora": ["train.lr=2e-4", "trainable.lora_layers=-10:", "trainable.lora_r=8"]}


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
    """A request for a person nobody taught the model, whose forget answers are stuffed with the most common
    English words and whose probes are general questions wearing the person's name (so training runs its
    full budget): forgetting it is forgetting English."""
    name = "Quillon Vasterby"
    words = COMMON.split()
    general = general_probes(spec)[:8]
    stuffing = [" ".join(words[i:] + words[:i]) for i in range(0, 40, 5)]
    questions = [f"{name} wants to know: {g.question}" for g in general]
    qa = [QA(q, f"{g.answer}, {s}.") for q, g, s in zip(questions, general, stuffing, strict=True)]
    qa += [QA(f"What should everyone know about {name}? ({i + 1})", s) for i, s in enumerate(stuffing)]
    return ForgetRequest(
        id="forget-quillon-vasterby", target=name, kind="privacy", forget=DataSpec(qa=qa),
        retain=DataSpec(qa=facts_qa(people[-N_NEIGHBOURS:], focus=True)),
        probes=Probes(forget=[Probe(q, g.answer, aliases=g.aliases) for q, g in zip(questions, general, strict=True)],
                      neighbour=facts_probes(people[-N_NEIGHBOURS:]), general=general_probes(spec)),
    )


def curve(state_dir: Path) -> list[dict]:
    with StateDir(state_dir, lock=False) as state:
        rows = []
        for e in state.ledger.entries():
            after = e.metrics_after or {}
            groups = after.get("groups", {})
            earlier = after.get("earlier", {})
            rows.append({
                "id": e.id, "status": e.status, "reason": e.reason,
                "forget": groups.get("forget", {}).get("accuracy"),
                "forget_paraphrase": groups.get("forget_paraphrase", {}).get("accuracy"),
                "earlier_worst": max(earlier.values()) if earlier else None,
                "earlier_mean": sum(earlier.values()) / len(earlier) if earlier else None,
                "neighbour": groups.get("neighbour", {}).get("accuracy"),
                "general": groups.get("general", {}).get("accuracy"),
                "forget_before": (e.metrics_before or {}).get("groups", {}).get("forget", {}).get("accuracy"),
                "baseline": (e.verification or {}).get("baseline"),
                "train_s": (e.timings or {}).get("train_s"), "total_s": (e.timings or {}).get("total_s"),
                "steps": (e.verification or {}).get("training", {}).get("steps"),
            })
        rows.append({"checkpoint_mb": state.size_bytes() / 1e6})
    return rows


def fmt(value, spec=".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_curve(name: str, rows: list[dict]) -> None:
    print(f"\n{name}  (checkpoints {rows[-1]['checkpoint_mb']:.1f} MB)")
    print(f"{'#':>2} {'request':<28} {'status':<11} {'forget':>6} {'para':>5} {'earlier':>7} {'neigh':>6} "
          f"{'general':>7} {'steps':>5} {'train s':>7} {'total s':>7}")
    for i, r in enumerate(rows[:-1], 1):
        print(f"{i:>2} {r['id'][:28]:<28} {r['status']:<11} {fmt(r['forget']):>6} {fmt(r['forget_paraphrase']):>5} "
              f"{fmt(r['earlier_worst']):>7} {fmt(r['neighbour']):>6} {fmt(r['general']):>7} {fmt(r['steps'], 'd'):>5} "
              f"{fmt(r['train_s'], '.0f'):>7} {fmt(r['total_s'], '.0f'):>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="npo:sequential,npo:lora,npo:task_vector,grad_diff:sequential,"
                        "simnpo:sequential")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--no-stealthy", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="run settings for every config")
    parser.add_argument("--state-root", default=None, help="keep the state directories here (default: a temp dir)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    spec = DemoSpec(n_people=N_PEOPLE)
    deployed = taught_model("deployed", spec)
    people = generate_people(N_PEOPLE, spec.seed)
    requests = [person_request(people, k, spec) for k in range(args.requests)]
    if not args.no_stealthy:
        requests.insert(min(5, len(requests)), stealthy_request(people, spec))
    root = Path(args.state_root or tempfile.mkdtemp(prefix="sequential-"))
    results = {}
    for item in args.configs.split(","):
        method, technique = item.split(":")
        overrides = [*TECHNIQUE_SETTINGS.get(technique, []), *args.overrides]
        config = from_dict(RunConfig, apply_overrides(demo_unlearn_config(method), overrides), "config")
        state_dir = root / f"{method}-{technique}"
        shutil.rmtree(state_dir, ignore_errors=True)
        start = time.perf_counter()
        apply_requests(requests, state_dir, str(deployed), config, SequenceConfig(technique=technique),
                       progress=False, export=False)
        rows = curve(state_dir)
        results[item] = {"rows": rows, "seconds": time.perf_counter() - start}
        print_curve(item, rows)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nstate directories: {root}")


if __name__ == "__main__":
    main()
