"""Ten removal requests in a row on the embedded model, through `unlearn apply`: sustainability, cost, defence.

    python benchmarks/sequential_requests.py [--configs npo:sequential,npo:lora,grad_diff:sequential]
                                             [--requests 10] [--no-stealthy] [--stealthy-retain own]
                                             [--anchor-replay N] [--retain-replay N] [--json sequential.json]
                                             [--state-root DIR [--resume [--retry]]] [--keep-data] [--tries N]
                                             [--chance N]
                                             [--set KEY=VALUE ...]

The embedded model is taught 13 fictitious people with the demo's recipe (cached under
$UNLEARN_HOME/demo). Request k asks to forget person k (k = 1..10); its retain set is every person not
forgotten yet, its neighbour probes the last three people (never forgotten), its general probes the
built-in general-knowledge questions. After request 5 comes a "stealthy" request: it names a person nobody
taught the model, its forget answers are stuffed with the most common English words and its probes' answers
are common words, so unlearning it damages the model for everyone; verification must reject it. Its retain
set is the last three people's facts, or with `--stealthy-retain own` filler of the attacker's own; with
`--requests 0` it is the only request, measured on the model as taught. `--anchor-replay N` gives every
request N of the demo's general replay answers as anchor data (the model's distributions on them are held
to those before the request; the attacker's own stealthy request gets none). `--retain-replay N` adds them
to the retain set instead (with `--set method.retain_loss=kl`, a KL term on the whole retain set).

Each configuration (METHOD:TECHNIQUE) gets its own state directory (with `--resume`, an existing one is
continued: requests already in its ledger are skipped, as `unlearn apply` does; with `--retry` as well, the
rejected and rolled-back ones are tried again with this call's settings, e.g. a larger step budget). Read from the ledger after every
request: its status, its own forget accuracy, the worst forget accuracy of the earlier requests (relapse),
neighbour and general accuracy, seconds per request (all tries), and the checkpoint storage. `--tries N`
trains a request up to N times, each with the next seed, while its verification fails (`unlearn apply
--tries`); the curve shows the try that was kept. `--chance N` asks the facts of N people nobody taught
the model, on the taught model and on each configuration's final model: the chance level of the forget
probes (how many of a never-learnt person's 8 facts are answered right by guessing from closed pools).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

from unlearn.benchmarks.demo import DemoSpec, demo_unlearn_config, facts_probes, replay_qa, taught_model
from unlearn.benchmarks.sequential import N_PEOPLE, person_request, stealthy_request, untaught_people
from unlearn.config import RunConfig, with_overrides
from unlearn.data.people import generate_people
from unlearn.requests import apply_requests
from unlearn.requests.state import StateDir

# LoRA adapters need a larger step than full-layer fine-tuning (Hu et al., 2022 use 2e-4 and above).
# `--set` comes after these, so `--set train.lr=...` replaces the LoRA rate too: run LoRA on its own.
TECHNIQUE_SETTINGS = {"lora": ["train.lr=2e-4", "trainable.lora_layers=-10:", "trainable.lora_r=8"]}


def curve(state_dir: Path) -> list[dict]:
    with StateDir(state_dir, lock=False) as state:
        rows = []
        for e in state.ledger.entries():
            earlier = (e.metrics_after or {}).get("earlier", {})
            rows.append({
                "id": e.id, "status": e.status, "reason": e.reason,
                **{group: e.accuracy("after", group) for group in ("forget", "forget_paraphrase", "neighbour", "general")},
                "earlier_worst": max(earlier.values()) if earlier else None,
                "earlier_mean": sum(earlier.values()) / len(earlier) if earlier else None,
                "forget_before": e.accuracy("before"),
                "baseline": (e.verification or {}).get("baseline"),
                "train_s": (e.timings or {}).get("train_s"), "total_s": (e.timings or {}).get("total_s"),
                "steps": (e.verification or {}).get("training", {}).get("steps"),
                "repair_steps": (e.verification or {}).get("training", {}).get("repair_steps"),
                "tries": (e.verification or {}).get("training", {}).get("tries", 1),
            })
        rows.append({"checkpoint_mb": state.size_bytes() / 1e6})
    return rows


def chance_level(model, tokenizer, people, eval_config) -> dict:
    """Accuracy on the facts of people the model never learnt, and how many people had k facts right."""
    from collections import Counter

    from unlearn.metrics.generation import generate_answers
    from unlearn.metrics.probes import probe_accuracy

    probes = facts_probes(people)
    texts = [g.text for g in generate_answers(model, tokenizer, [p.question for p in probes], eval_config.batch_size,
                                              eval_config.max_new_tokens)]
    accuracy = probe_accuracy(texts, [p.answer for p in probes], [p.aliases for p in probes])
    per_person = len(probes) // len(people)
    right = Counter(sum(accuracy.per_example[i:i + per_person]) for i in range(0, len(probes), per_person))
    hits = [f"{p.question} -> {t.strip()[:60]!r}" for p, t, c in zip(probes, texts, accuracy.per_example, strict=True)
            if c]
    return {"people": len(people), "accuracy": accuracy.value,
            "people_with_k_right": {int(k): v for k, v in sorted(right.items())}, "hits": hits}


def print_chance(where: str, chance: dict) -> None:
    print(f"chance level on {where}: {chance['people']} untaught people, accuracy {chance['accuracy']:.3f}, "
          f"people with k of their facts right: {chance['people_with_k_right']}", flush=True)
    for hit in chance["hits"]:
        print(f"    {hit}")


def fmt(value, spec=".2f") -> str:
    return "-" if value is None else format(value, spec)


def steps_text(row: dict) -> str:
    """Unlearning steps, '+N' repair steps kept (train.repair_steps), and '@k' when try k was kept."""
    return (fmt(row["steps"], "d") + (f"+{row['repair_steps']}" if row.get("repair_steps") else "")
            + (f"@{row['tries']}" if row.get("tries", 1) > 1 else ""))


def print_curve(name: str, rows: list[dict]) -> None:
    print(f"\n{name}  (checkpoints {rows[-1]['checkpoint_mb']:.1f} MB)")
    print(f"{'#':>2} {'request':<28} {'status':<11} {'forget':>6} {'para':>5} {'earlier':>7} {'neigh':>6} "
          f"{'general':>7} {'steps':>7} {'train s':>7} {'total s':>7}")
    for i, r in enumerate(rows[:-1], 1):
        print(f"{i:>2} {r['id'][:28]:<28} {r['status']:<11} {fmt(r['forget']):>6} {fmt(r['forget_paraphrase']):>5} "
              f"{fmt(r['earlier_worst']):>7} {fmt(r['neighbour']):>6} {fmt(r['general']):>7} {steps_text(r):>7} "
              f"{fmt(r['train_s'], '.0f'):>7} {fmt(r['total_s'], '.0f'):>7}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="npo:sequential,npo:lora,npo:task_vector,grad_diff:sequential,"
                        "simnpo:sequential")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--no-stealthy", action="store_true")
    parser.add_argument("--stealthy-retain", choices=("neighbours", "own"), default="neighbours",
                        help="the stealthy request's retain set: the last three people, or its own filler")
    parser.add_argument("--anchor-replay", type=int, default=0,
                        help="give each request this many of the demo's general replay answers as anchor data "
                             "(KL to the model before the request, weight train.anchor_weight)")
    parser.add_argument("--retain-replay", type=int, default=0,
                        help="add this many of the demo's general replay answers to each request's retain set")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="run settings for every config")
    parser.add_argument("--state-root", default=None, help="keep the state directories here (default: a temp dir)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the state directories under --state-root (same settings) instead of starting anew")
    parser.add_argument("--retry", action="store_true",
                        help="with --resume: try rejected and rolled-back requests again with this call's settings")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep each request's data and probe answers in the ledger (to see which probes failed)")
    parser.add_argument("--tries", type=int, default=1,
                        help="train each request up to this many times (next seed each time) while verification fails")
    parser.add_argument("--chance", type=int, default=0,
                        help="measure the forget probes' chance level on this many untaught people")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.retry and not args.resume:
        parser.error("--retry continues existing state directories: give --resume (and --state-root) too")

    spec = DemoSpec(n_people=N_PEOPLE, retain_replay=args.retain_replay)
    deployed = taught_model("deployed", spec)
    people = generate_people(N_PEOPLE, spec.seed)
    anchor = replay_qa(spec)[: args.anchor_replay] if args.anchor_replay else []
    requests = [person_request(people, k, spec, anchor) for k in range(args.requests)]
    if not args.no_stealthy:
        stealthy = stealthy_request(people, spec, args.stealthy_retain, anchor if args.stealthy_retain != "own" else [])
        requests.insert(min(5, len(requests)), stealthy)
    root = Path(args.state_root or tempfile.mkdtemp(prefix="sequential-"))
    results: dict = {}
    if args.chance:
        from unlearn.models.loading import load_model

        controls = untaught_people(people, args.chance)
        base, tokenizer = load_model(str(deployed), "float32")
        results["chance"] = {"taught model": chance_level(base.eval(), tokenizer, controls, RunConfig().eval)}
        print_chance("the taught model", results["chance"]["taught model"])
    for item in filter(None, args.configs.split(",")):  # --configs '' with --chance: the chance level alone
        method, technique = item.split(":")
        overrides = [*TECHNIQUE_SETTINGS.get(technique, []), *args.overrides]
        config = with_overrides(RunConfig, demo_unlearn_config(method), overrides)
        state_dir = root / f"{method}-{technique}"
        print(f"{item}: lr {config.train.lr}, at most {config.train.max_steps} steps, retain "
              f"{config.method.get('retain_loss', 'nll')} x {config.method.get('retain_weight')}, anchor weight "
              f"{config.train.anchor_weight if args.anchor_replay else 0}, similar retain {config.train.retain_similar}, "
              f"repair steps {config.train.repair_steps}, tries {args.tries}", flush=True)
        if not args.resume:
            shutil.rmtree(state_dir, ignore_errors=True)
        start = time.perf_counter()
        sequence = dataclasses.replace(config.sequence, technique=technique, keep_data=args.keep_data)
        apply_requests(requests, state_dir, str(deployed), config, sequence, retry=args.retry, progress=False,
                       export=False, tries=args.tries)
        rows = curve(state_dir)
        results[item] = {"rows": rows, "seconds": time.perf_counter() - start}
        print_curve(item, rows)
        if args.chance:
            with StateDir(state_dir, lock=False) as state:
                final = state.assemble(base).eval()
            results["chance"][item] = chance_level(final, tokenizer, controls, config.eval)
            print_chance(f"{item}'s final model", results["chance"][item])
            del final
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nstate directories: {root}")


if __name__ == "__main__":
    main()
