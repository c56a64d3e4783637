"""What keeps the other people when the demo forgets one: the request's composition and the retain weight.

    python benchmarks/demo_ablation.py [--only default,no-focus] [--json out.json]

Each variant runs the demo request with NPO (lr 2e-5, top 10 layers, at most 40 steps, early stop) and
changes one thing from the demo's defaults: the retain set (the other people's facts, with or without
replay answers), the focus of the fact QA pairs (only the private part of each answer bears the loss),
the retain weight, or the optimizer. Reuses the demo's cached taught models ($UNLEARN_HOME/demo).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from unlearn.benchmarks.demo import DemoSpec, run_demo

# name: (DemoSpec changes, run overrides, what it tests)
VARIANTS: dict[str, tuple[dict, list[str], str]] = {
    "default": ({}, [], "retain = other people only, weight 20, focus on the private part"),
    "no-focus": ({"fact_focus": False}, [], "the whole answer bears the loss"),
    "weight-1": ({}, ["method.retain_weight=1"], "retain weight 1 (the method's own default)"),
    "with-replay": ({"retain_replay": 40}, [], "retain = other people + 40 replay answers"),
    "earlier-default": ({"retain_replay": 40, "fact_focus": False}, ["method.retain_weight=1"],
                        "replay in the retain set, no focus, weight 1"),
    "sgd": ({}, ["method.retain_weight=1", "train.optimizer=sgd", "train.lr=0.1"],
            "plain SGD (lr 0.1) instead of AdamW, weight 1"),
}


def run_variant(name: str) -> dict:
    spec_changes, overrides, what = VARIANTS[name]
    spec = dataclasses.replace(DemoSpec(), **spec_changes)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = run_demo(Path(tmp) / "out", method="npo", overrides=overrides, progress=False, spec=spec,
                          echo=lambda _: None)
    return {
        "variant": name,
        "what": what,
        **{g: report.accuracy("unlearned", g) for g in ("forget", "forget_paraphrase", "neighbour", "general")},
        "steps": report.training.steps,
        "checks": f"{sum(c['passed'] for c in report.checks)}/{len(report.checks)}",
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    rows = []
    for name in names:
        rows.append(run_variant(name))
        r = rows[-1]
        print(f"{name:<16} forget {r['forget']:.3f} para {r['forget_paraphrase']:.3f} neigh {r['neighbour']:.3f} "
              f"gen {r['general']:.3f} steps {r['steps']} checks {r['checks']}", flush=True)
    print("\n| variant | what changes | forget | paraphrase | neighbour | general | steps | checks |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['what']} | {r['forget']:.3f} | {r['forget_paraphrase']:.3f} | "
              f"{r['neighbour']:.3f} | {r['general']:.3f} | {r['steps']} | {r['checks']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
