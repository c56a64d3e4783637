"""Audit the demo request: positive controls and every method, one table of recovery per attack.

    python benchmarks/audit_demo.py [--methods grad_ascent,npo] [--controls-only | --no-controls] [--set leak_at_k.n=8]
                                    [--method-set method.alpha=2] [--json audit_demo.json]

With --json, each row is added to the file as soon as it is measured (an earlier row with the same label is
replaced), so several runs can fill one file (e.g. docs/results/audit_demo.json).

Uses the demo's cached deployed and retain models ($UNLEARN_HOME/demo; `unlearn demo` makes them).
Rows:
  - control: name-refusal guard: the deployed model behind a guard that refuses when the target is named
    (a positive control: paraphrase, jailbreak and in-context prompts that do not spell the name get past it);
  - control: light gradient ascent: the demo's gradient ascent stopped after 10 steps instead of running until
    the forget probes are forgotten (a positive control for relearning);
  - each method with the demo's settings (early-stopped as soon as the forget probes are forgotten), audited
    against the deployed model (original) and the retain model (floor).
Columns: plain forget accuracy of the audited model, recovery per attack, the worst case, the likelihood test's
top-1 on the audited weights and on the held-out facts after relearning (each beside the retain model's),
audit seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from unlearn.attacks import DEFAULT_ATTACKS
from unlearn.attacks.controls import name_refusal_guard
from unlearn.auditing import AuditReport, audit, audit_config
from unlearn.benchmarks.demo import DemoSpec, demo_request, demo_unlearn_config, taught_model
from unlearn.config import RunConfig, with_overrides
from unlearn.methods import METHODS, make_method
from unlearn.metrics.judge import JUDGE_VERSION
from unlearn.models.loading import load_model
from unlearn.unlearner import Unlearner

LIGHT_GA = ["train.max_steps=10", "train.early_stop=false"]


def row(label: str, report: AuditReport, unlearn_s: float | None, method: dict | None = None,
        lr: float | None = None) -> dict:
    attacks = report.attacks
    relearn = attacks.get("relearn")
    leak = attacks.get("leak_at_k")
    return {
        "label": label,
        "method": None if method is None else method["name"],  # None for a guard control
        "settings": None if method is None else {k: v for k, v in method.items() if k != "name"} | {"lr": lr},
        "forget": report.accuracy("unlearned", "forget"),
        "neighbour": report.plain["unlearned"].get("neighbour", {}).get("accuracy"),
        "recovery": {n: (a.recovery if a.ok else a.status) for n, a in attacks.items()},
        "attack_s": {n: round(a.seconds, 1) for n, a in attacks.items()},
        "worst": report.headline.worst_recovery,
        "worst_attack": report.headline.worst_attack,
        "verdict": report.verdict,
        "audit_s": round(report.timings["total_s"], 1),
        "quick": bool(report.config.get("stop_at_failure")),  # attacks after the first over max_recovery skipped
        "judge": JUDGE_VERSION,  # the judge of "answered" every recovery here used
        "unlearn_s": None if unlearn_s is None else round(unlearn_s, 1),
        "utility": {n: a.utility for n, a in attacks.items() if a.utility},
        "variants": {n: {v: x["recovery"] for v, x in a.variants.items()} for n, a in attacks.items()},
        "curve": leak.curve if leak else None,
        "likelihood": {role: t["top1"] for role, t in report.likelihood.items()},
        "likelihood_relearned": {f"{who} {variant}": t["top1"]
                                 for who, tests in (("unlearned", relearn.likelihood if relearn else {}),
                                                    ("retain", relearn.retain_likelihood if relearn else {}))
                                 for variant, t in tests.items()},
        "likelihood_passed": all(c["passed"] for c in report.checks if c["name"].startswith("forgotten by lik")),
    }


def load_rows(path: str) -> list[dict]:
    return json.loads(Path(path).read_text()) if Path(path).exists() else []


def fmt(value) -> str:
    if value is None:
        return "n/a"
    return value if isinstance(value, str) else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS.names()))
    parser.add_argument("--controls-only", action="store_true")
    parser.add_argument("--no-controls", action="store_true", help="audit the methods alone")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="audit settings")
    parser.add_argument("--method-set", dest="method_overrides", action="append", default=[],
                        help="run settings for every audited method, over its demo settings (e.g. method.alpha=2)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    spec = DemoSpec()
    request = demo_request(spec)
    deployed, tokenizer = load_model(str(taught_model("deployed", spec)))
    retain = load_model(str(taught_model("retain", spec)))[0]
    cfg = audit_config(None, args.overrides)
    rows = []

    def report_row(label: str, report: dict, unlearn_s: float | None, method: dict | None = None,
                   lr: float | None = None) -> None:
        rows.append(json.loads(json.dumps(row(label, report, unlearn_s, method, lr))))
        if args.json:  # each row as soon as it is measured, replacing an earlier row of the same label
            kept = [r for r in load_rows(args.json) if r["label"] != label]
            Path(args.json).write_text(json.dumps(kept + [rows[-1]], indent=1))
        r = rows[-1]
        print(f"{label:<28} forget {fmt(r['forget'])} worst {fmt(r['worst'])} ({r['worst_attack']}) "
              f"audit {r['audit_s']} s  " + " ".join(f"{n}={fmt(v)}" for n, v in r["recovery"].items())
              + f"  likelihood {r['likelihood']} after relearning {r['likelihood_relearned']}", flush=True)

    runs = []
    if not args.no_controls:
        report = audit(deployed, tokenizer, request, original=deployed, retain=retain, config=cfg, progress=False,
                       guard=name_refusal_guard(request.target))
        report_row("control: name-refusal guard", report, None)
        runs = [("control: light gradient ascent", "grad_ascent", LIGHT_GA)]
    if not args.controls_only:
        suffix = f" ({', '.join(args.method_overrides)})" if args.method_overrides else ""
        runs += [(name + suffix, name, args.method_overrides) for name in args.methods.split(",")]
    for label, name, overrides in runs:
        config = with_overrides(RunConfig, demo_unlearn_config(name), overrides)
        torch.manual_seed(config.train.seed)
        start = time.perf_counter()
        result = Unlearner(copy.deepcopy(deployed), tokenizer, config, make_method(config.method)).apply(
            request, progress=False)
        unlearn_s = time.perf_counter() - start
        report = audit(result.model, tokenizer, request, original=deployed, retain=retain, config=cfg, progress=False)
        report_row(label, report, unlearn_s, result.method, config.train.lr)
        del result

    attacks = [a for a in DEFAULT_ATTACKS if a in cfg.attacks]
    print("\n| audited | forget (plain) | " + " | ".join(attacks) + " | worst | likelihood top-1 (retain) "
          "| after relearning (retain) | audit s |")
    print("|---" * (len(attacks) + 6) + "|")
    for r in rows:
        plain, relearned = r["likelihood"], r["likelihood_relearned"]
        after = " / ".join(fmt(v) for v in relearned.values()) or "n/a"
        print(f"| {r['label']} | {fmt(r['forget'])} | " + " | ".join(fmt(r["recovery"].get(a)) for a in attacks)
              + f" | **{fmt(r['worst'])}** | {fmt(plain.get('unlearned'))} ({fmt(plain.get('retain'))}) | {after} "
              f"| {r['audit_s']} |")


if __name__ == "__main__":
    main()
