"""Every guard on the demo request, beside the demo's loss method: probe accuracy, latency, and the audit.

    python benchmarks/guards_demo.py [--guards refusal_filter,in_context] [--no-audit] [--set leak_at_k.n=8]
                                     [--json guards_demo.json]

Uses the demo's cached deployed and retain models ($UNLEARN_HOME/demo; `unlearn demo` makes them). Rows:
  - deployed: the model that knows the person (no guard);
  - npo: the demo's loss method applied to the deployed model (weights changed);
  - each guard in front of the deployed model. The guards are given the request *without its retain
    set* (the other people's questions), so the neighbour column measures prompts the classifier has not
    seen; logit_offset uses the pair (deployed, npo result): the same 135M size as the guarded model,
    since no smaller model with this tokenizer is at hand.
Columns: accuracy on the forget probes, their paraphrases, the other people (neighbour) and general
questions; milliseconds per generated token when answering the general questions (batch 16, 32 new
tokens), and the same per prompt for the forget probes; recovery per attack of the default audit against
the deployed (original) and retain models.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time

import torch
from audit_demo import fmt  # benchmarks/ is on the path when this script runs

from unlearn.attacks import DEFAULT_ATTACKS, Subject
from unlearn.auditing import audit, audit_config, plain_evaluation
from unlearn.benchmarks.demo import DemoSpec, demo_request, demo_unlearn_config, taught_model
from unlearn.config import RunConfig, from_dict
from unlearn.data.request import DataSpec
from unlearn.guards import GUARDS, GuardedModel, make_guard
from unlearn.methods import make_method
from unlearn.metrics.generation import generate_answers
from unlearn.metrics.probes import probe_groups
from unlearn.models.loading import load_model
from unlearn.unlearner import Unlearner

LOSS_METHOD = "npo"


def ms_per_token(model, tokenizer, questions: list[str]) -> tuple[float, float]:
    """(milliseconds per generated token, milliseconds per prompt) of greedy answers, batch 16."""
    start = time.perf_counter()
    answers = generate_answers(model, tokenizer, questions, 16, 32)
    seconds = time.perf_counter() - start
    tokens = sum(max(len(a.token_ids), 1) for a in answers)
    return 1000 * seconds / tokens, 1000 * seconds / len(questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guards", default=",".join(GUARDS.names()))
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--no-loss-method", action="store_true", help=f"leave out the {LOSS_METHOD} row (and its "
                        "unlearning run; logit_offset needs it)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="audit settings")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    torch.set_num_threads(2)
    spec = DemoSpec()
    request = demo_request(spec)
    guard_view = dataclasses.replace(request, retain=DataSpec())
    deployed, tokenizer = load_model(str(taught_model("deployed", spec)))
    retain = load_model(str(taught_model("retain", spec)))[0]
    cfg = audit_config(None, args.overrides)
    groups = probe_groups(request)  # forget, neighbour, general, forget_paraphrase
    general = [p.question for p in request.probes.general]
    forget = [p.question for p in request.probes.forget]

    names = args.guards.split(",")
    if args.no_loss_method and "logit_offset" in names:
        parser.error("logit_offset needs the loss method's result: leave out --no-loss-method")
    candidates = [("deployed (no guard)", lambda: deployed, None)]
    if not args.no_loss_method:
        config = from_dict(RunConfig, demo_unlearn_config(LOSS_METHOD), "config")
        torch.manual_seed(config.train.seed)
        start = time.perf_counter()
        unlearned = Unlearner(copy.deepcopy(deployed), tokenizer, config, make_method(config.method)).apply(
            request, progress=False).model.eval()
        print(f"{LOSS_METHOD} unlearning: {time.perf_counter() - start:.1f} s", flush=True)
        candidates.append((f"{LOSS_METHOD} (loss method)", lambda: unlearned, None))

    rows = []
    for name in names:
        def build(name=name):
            guard = make_guard(name if name != "logit_offset" else
                               {"name": name, "small_original": "deployed", "small_unlearned": LOSS_METHOD})
            if name == "logit_offset":
                guard.use_models(deployed, unlearned)
            return GuardedModel(deployed, tokenizer, [guard])
        candidates.append((name, build, name))
    for label, build, guard_name in candidates:
        start = time.perf_counter()
        model = build()
        if guard_name:
            model.add_request(guard_view)
        setup_s = time.perf_counter() - start
        subject = Subject(model, tokenizer, 16, 32)
        plain = plain_evaluation(subject, groups, cfg.rouge_threshold, None)
        token_ms, _ = ms_per_token(model, tokenizer, general)
        _, forget_prompt_ms = ms_per_token(model, tokenizer, forget)
        row = {"label": label, "setup_s": round(setup_s, 2),
               **{g: plain[g]["accuracy"] for g in groups}, "ms_per_token_general": token_ms,
               "ms_per_prompt_forget": forget_prompt_ms,
               "state": model.guards[0].state() if guard_name else {}}
        if not args.no_audit and label != "deployed (no guard)":
            report = audit(model, tokenizer, request, original=deployed, retain=retain, config=cfg, progress=False)
            attacks = report.attacks
            row.update({"recovery": {n: (a.recovery if a.ok else a.status) for n, a in attacks.items()},
                        "worst": report.headline.worst_recovery, "worst_attack": report.headline.worst_attack,
                        "audit_s": round(report.timings["total_s"], 1),
                        "examples": {n: [e for e in a.examples if e.get("leaked")][:3] for n, a in attacks.items()}})
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)

    base = rows[0]["ms_per_token_general"]
    print("\n| model | forget | forget paraphrase | neighbour | general | ms/token (general) | overhead |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {fmt(r['forget'])} | {fmt(r['forget_paraphrase'])} | {fmt(r['neighbour'])} | "
              f"{fmt(r['general'])} | {r['ms_per_token_general']:.1f} | {r['ms_per_token_general'] / base:.2f}x |")
    if not args.no_audit:
        attacks = [a for a in DEFAULT_ATTACKS if a in cfg.attacks]
        print("\n| model | " + " | ".join(attacks) + " | worst | audit s |")
        print("|---" * (len(attacks) + 3) + "|")
        for r in rows[1:]:
            print(f"| {r['label']} | " + " | ".join(fmt(r["recovery"].get(a)) for a in attacks)
                  + f" | **{fmt(r['worst'])}** | {r['audit_s']} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
