"""Run the demo request with every method (same request, same step budget) and print one table.

    python benchmarks/demo_methods.py [--methods npo,simnpo] [--set train.max_steps=20] [--json out.json]

With --json, each row is written as soon as it is measured, and a method already in the file at the same
settings (its demo settings with the --set overrides) and judged by the current judge is not run again: a stopped
run resumes, and a method whose settings or judge changed is measured again (its new row replaces the old one).

Reuses the demo's cached deployed/retain models and their evaluations ($UNLEARN_HOME/demo).
Columns: accuracy on the forgotten person's facts and their paraphrases, on the other people,
on general knowledge, fluency, the likelihood test's top-1 and mean rank of the forgotten facts' true
values among nine untaught distractors (chance 0.1 and 5.5), the number of passed demo checks, and the
unlearning time; each row also records how long teaching the retain model from scratch took, the cost that
unlearning is set against.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from unlearn.benchmarks.demo import DemoSpec, demo_unlearn_config, run_demo, taught_model
from unlearn.config import apply_overrides
from unlearn.methods import METHODS, make_method
from unlearn.methods.base import method_settings
from unlearn.metrics.judge import JUDGE_VERSION
from unlearn.run_report import RunReport


def load_rows(path: str | None) -> list[dict]:
    """The rows already measured in `path` (none when it is not given or does not exist yet)."""
    if not path or not Path(path).exists():
        return []
    return json.loads(Path(path).read_text())


def settings_of(name: str, overrides: list[str]) -> dict:
    """The method settings and learning rate a demo run of `name` uses (as a row records them, JSON-normalised)."""
    config = apply_overrides(demo_unlearn_config(name), overrides)
    method = {k: v for k, v in method_settings(make_method(config["method"])).items() if k != "name"}
    return json.loads(json.dumps(method | {"lr": config["train"]["lr"]}))


def row(name: str, report: RunReport, seconds: float) -> dict:
    acc = {role: {g: r.accuracy for g, r in e.groups.items()} for role, e in report.evaluations.items()}
    u = acc["unlearned"]
    return {
        "method": name,
        "forget": u["forget"],
        "paraphrase": u["forget_paraphrase"],
        "neighbour": u["neighbour"],
        "general": u["general"],
        "fluent": report.evaluations["unlearned"].fluency["passed"],
        **likelihood_fields(report, "unlearned"),
        "checks": f"{sum(c['passed'] for c in report.checks)}/{len(report.checks)}",
        "failed_checks": [c["name"] for c in report.checks if not c["passed"]],
        "steps": report.training.steps,
        "unlearn_s": round(report.timings["unlearn_s"], 1),
        "total_s": round(seconds, 1),
        "settings": {k: v for k, v in report.method.items() if k != "name"} | {"lr": report.config["train"]["lr"]},
        "reference": {role: acc[role] | likelihood_fields(report, role) for role in ("original", "deployed", "retain")},
        "judge": JUDGE_VERSION,  # the judge of "answered" every accuracy here used
        "retain_teach_s": retain_teach_seconds(),
    }


def retain_teach_seconds() -> float | None:
    """Seconds it took to teach the demo's retain model from scratch (the cost of exact re-teaching), as recorded
    beside the cached model when it was taught."""
    record = taught_model("retain", DemoSpec(), progress=False) / "teach.json"
    return round(json.loads(record.read_text())["seconds"], 1) if record.is_file() else None


def likelihood_fields(report: RunReport, role: str) -> dict:
    """A row's likelihood columns for `role`: top-1, mean rank and ranked last (NaN / None without the test)."""
    tested = report.evaluations[role].likelihood or {"top1": float("nan"), "mean_rank": float("nan")}
    return {"likelihood_top1": tested["top1"], "likelihood_rank": tested["mean_rank"],
            "likelihood_last": tested.get("last")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS.names()))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = load_rows(args.json)
    judge = JUDGE_VERSION
    for name in args.methods.split(","):
        settings = settings_of(name, args.overrides)
        if any(r["method"] == name and r["settings"] == settings and r.get("judge") == judge
               and r.get("likelihood_last") is not None for r in rows):
            print(f"{name:<12} already in {args.json} at these settings and judge, with both likelihood checks",
                  flush=True)
            continue
        rows = [r for r in rows if r["method"] != name]
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            report = run_demo(Path(tmp) / "out", method=name, overrides=args.overrides, progress=False, echo=lambda _: None)
        rows.append(row(name, report, time.perf_counter() - start) | {"overrides": list(args.overrides)})
        rows[-1]["settings"] = json.loads(json.dumps(rows[-1]["settings"]))
        r = rows[-1]
        print(f"{name:<12} forget {r['forget']:.3f} para {r['paraphrase']:.3f} neigh {r['neighbour']:.3f} "
              f"gen {r['general']:.3f} fluent {r['fluent']} likelihood {r['likelihood_top1']:.3f} "
              f"checks {r['checks']} ({r['unlearn_s']}s)", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
    if not rows:
        return
    ref = rows[0]["reference"]
    print("\n| method | forget | paraphrase | neighbour | general | fluent | likelihood top-1 | mean rank | checks "
          "| unlearn s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for role in ("original", "deployed", "retain"):
        a = ref[role]
        print(f"| *{role} model* | {a['forget']:.3f} | {a['forget_paraphrase']:.3f} | {a['neighbour']:.3f} "
              f"| {a['general']:.3f} | | {a['likelihood_top1']:.3f} | {a['likelihood_rank']:.2f} | | |")
    for r in rows:
        print(f"| {r['method']} | {r['forget']:.3f} | {r['paraphrase']:.3f} | {r['neighbour']:.3f} | {r['general']:.3f} "
              f"| {'yes' if r['fluent'] else 'no'} | {r['likelihood_top1']:.3f} | {r['likelihood_rank']:.2f} "
              f"| {r['checks']} | {r['unlearn_s']} |")


if __name__ == "__main__":
    main()
