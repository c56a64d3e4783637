"""Exact unlearning on the demo request: teach the demo's people in K shards, forget one person by retraining
their shard, and measure it against teaching from scratch without them.

    python benchmarks/sharded_demo.py [--shards 3] [--set trainable.mode=lora] [--no-audit] [--json out.json]
                                      [--work DIR]

Steps (each timed): teach the six people in K shards (the "deployed" model: base + the sum of the shard updates);
apply the demo's request to that state (`unlearn apply` on a sharded state: the shard holding the person is
retrained without them); teach the five other people from scratch with the same recipe (the retain model, and
the cost of full retraining); compare the two models' weights; evaluate the original, deployed, unlearned and
retain models on the demo's probes and likelihood test; check them with the demo's checks; audit the unlearned
model against the deployed one with the retain model as the floor (every attack, relearning included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from audit_demo import fmt, row  # noqa: E402

from unlearn.auditing import audit, audit_config  # noqa: E402
from unlearn.benchmarks.demo import (  # noqa: E402
    DemoSpec,
    demo_checks,
    demo_request,
    demo_unlearn_config,
    evaluate_all,
    people_for,
)
from unlearn.config import RunConfig, from_dict, with_overrides  # noqa: E402
from unlearn.exact import ShardConfig, TeachItem, apply_exact, teach_shards  # noqa: E402
from unlearn.models.loading import load_model  # noqa: E402


def people_items(people) -> list[TeachItem]:
    return [TeachItem(question=f.question, answer=f.answer, source=p.name) for p in people for f in p.facts()]


def same_weights(a, b) -> tuple[bool, float]:
    sa, sb = a.state_dict(), b.state_dict()
    gap = max(float((sa[k] - sb[k]).abs().max()) for k in sa)
    return all(torch.equal(sa[k], sb[k]) for k in sa), gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="teaching settings (ShardConfig)")
    parser.add_argument("--audit-set", dest="audit_overrides", action="append", default=[], help="audit settings")
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--work", default="/tmp/sharded-demo", help="where the two state directories go")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    spec = DemoSpec()
    people, person = people_for(spec)
    request = demo_request(spec)
    config = with_overrides(ShardConfig, ShardConfig(shards=args.shards), args.overrides, "teach")
    work = Path(args.work)
    deployed_dir, retain_dir = work / f"deployed-k{args.shards}", work / f"retain-k{args.shards}"
    timings = {}
    for directory, taught in ((deployed_dir, people), (retain_dir, [p for p in people if p is not person])):
        if not (directory / "shards.json").is_file():
            start = time.perf_counter()
            teach_shards(people_items(taught), directory, spec.base_model, config)
            timings[f"teach {directory.name}"] = round(time.perf_counter() - start, 1)
    unlearned_dir = work / f"unlearned-k{args.shards}"
    if not (unlearned_dir / "shards.json").is_file():
        import shutil

        shutil.copytree(deployed_dir, unlearned_dir, ignore=shutil.ignore_patterns("lock"))
        outcome = apply_exact(request, unlearned_dir, evaluate=False)
        timings["exact removal"] = outcome.entry["retrain_seconds"]
        timings["full retraining (sum of the retain state's shards)"] = outcome.entry["full_retrain_seconds"]
    manifest = json.loads((unlearned_dir / "shards.json").read_text())
    print("timings:", timings, "ledger:", json.dumps(manifest["requests"][-1]["shards"]))

    models = {"original": load_model(spec.base_model), "deployed": load_model(str(deployed_dir / "model")),
              "unlearned": load_model(str(unlearned_dir / "model")), "retain": load_model(str(retain_dir / "model"))}
    identical, gap = same_weights(models["unlearned"][0], models["retain"][0])
    print(f"unlearned == retain (taught from scratch without {person.name}): {identical} (max |diff| {gap:.3g})")
    run_cfg = from_dict(RunConfig, demo_unlearn_config("npo"), "config")
    evals = {role: evaluate_all(m, t, request, spec, run_cfg) for role, (m, t) in models.items()}
    checks = demo_checks(evals)
    print("\n| model | forget | paraphrase | neighbour | general | all facts | likelihood top-1 | mean rank |")
    print("|---|---|---|---|---|---|---|---|")
    for role, e in evals.items():
        lik = e.likelihood or {}
        print(f"| {role} | " + " | ".join(f"{e.accuracy(g):.3f}" for g in ("forget", "forget_paraphrase", "neighbour",
                                                                           "general", "all_facts"))
              + f" | {fmt(lik.get('top1'))} | {fmt(lik.get('mean_rank'))} |")
    for c in checks:
        print(f"  [{'PASS' if c['passed'] else 'FAIL'}] {c['name']}: {c['value']:.3f} (threshold {c['threshold']:.3f})")
    result = {"timings": timings, "identical": identical, "max_diff": gap, "checks": checks,
              "accuracy": {r: {g: v.accuracy for g, v in e.groups.items()} for r, e in evals.items()},
              "likelihood": {r: (e.likelihood or {}).get("top1") for r, e in evals.items()}}
    if not args.no_audit:
        cfg = audit_config(None, args.audit_overrides)
        (deployed, tokenizer), (unlearned, _), (retain, _) = models["deployed"], models["unlearned"], models["retain"]
        report = audit(unlearned, tokenizer, request, original=deployed, retain=retain, config=cfg, progress=True)
        audited = row(f"exact (K={args.shards})", report, timings.get("exact removal"))
        print(f"\naudit: verdict {audited['verdict']}, worst recovery {fmt(audited['worst'])} ({audited['worst_attack']})")
        print("recovery per attack:", {n: fmt(v) for n, v in audited["recovery"].items()})
        print("likelihood top-1:", audited["likelihood"], "after relearning:", audited["likelihood_relearned"])
        result["audit"] = audited
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
