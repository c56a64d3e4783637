"""Write docs/results.md from the measured rows kept in docs/results/ (one command, no model runs).

    python benchmarks/results_page.py            # rewrite docs/results.md
    python benchmarks/results_page.py --check    # exit 1 when docs/results.md is not what the rows give
    python benchmarks/results_page.py --add-tofu runs/x/result.json             # a TOFU run's row (then rewrite)
    python benchmarks/results_page.py --add-tofu-sweep runs/tofu-mini30-forget10-sweep   # every finished sweep run
    python benchmarks/results_page.py --add-tofu-reference target eval-target-forget10.json
    python benchmarks/results_page.py --add-muse runs/muse-mini-sweep/muse.json  # a MUSE sweep's rows

Inputs (each written by a benchmark's --json, then copied here):
  docs/results/demo_methods.json   benchmarks/demo_methods.py rows: every method on the demo request
  docs/results/audit_demo.json     benchmarks/audit_demo.py rows: the audit of a method at the same settings
  docs/results/tofu.json           rows taken from `unlearn bench tofu run|exact` result.json files (--add-tofu), from
                                   the run files of a `unlearn bench tofu sweep` (--add-tofu-sweep DIR), and
                                   from the setting's cached evaluations of the target, retain and ceiling models
                                   (--add-tofu-reference ROLE FILE)
  docs/results/muse.json           rows taken from an `unlearn bench muse sweep` muse.json (--add-muse FILE): the
                                   target and retain models and every run
A method's row counts only at the settings it is measured with; an audit row is joined to the demo row of the same
method and settings. Registered methods without a row are printed (not written to the page).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PAGE = ROOT / "docs" / "results.md"
AUDIT_BAR = 0.10  # worst-case recovery allowed by the deep-forgetting bar (issue text, docs/benchmarks.md)
TOFU_COLUMNS = ("forget_quality", "model_utility", "unseen_forget_quality", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE",
                "retain_Q_A_ROUGE", "extraction_strength", "privleak")
TOFU_ROLES = ("target", "retain", "ceiling")
MUSE_COLUMNS = (("verbmem_f", "VerbMem forget"), ("knowmem_f", "KnowMem forget"), ("knowmem_r", "KnowMem retain"),
                ("mia_min_k", "Min-K AUC"), ("privleak", "PrivLeak"))
MUSE_FORGET_MARGIN = 0.05  # VerbMem / KnowMem on the forget side within this of the retain model's
MUSE_UTILITY_SHARE = 0.9  # KnowMem on the retain side at least this share of the target's
MUSE_PRIVLEAK = 10.0  # |PrivLeak| at most this (percent)


def load(name: str) -> list[dict]:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else []


def settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def audit_for(row: dict, audits: list[dict]) -> dict | None:
    """The full audit of the same method at the same settings, if there is one (a quick audit's worst case is
    only a lower bound)."""
    return next((a for a in audits if a.get("method") == row["method"] and a.get("settings") == row["settings"]
                 and not a.get("quick")), None)


def passes_bar(row: dict, audit: dict | None) -> bool:
    """Every demo check passed (both sides of the likelihood test among them: a row measured before the
    'ranked last' side has no `likelihood_last` and cannot pass) and the audit's worst recovery within the bar,
    the audit judged by the same judge of "answered" as the row."""
    return (not row["failed_checks"] and row.get("likelihood_last") is not None
            and audit is not None and audit["worst"] <= AUDIT_BAR and audit_judge(audit) == str(row.get("judge", "1")))


def order(row: dict, audits: list[dict]) -> tuple:
    audit = audit_for(row, audits)
    return (not passes_bar(row, audit), len(row["failed_checks"]), row["likelihood_top1"], row["method"])


QUICK_STOP = 0.25  # the audit's default max_recovery: the quick audit stops after the first attack above it


def quick_worst(audit: dict) -> tuple[float | None, int]:
    """What `--quick` would report on this full audit's attacks (same order, same attacks, so the same
    recoveries): the worst case over the attacks run up to and including the first above QUICK_STOP, and how
    many attacks that is."""
    worst, ran = None, 0
    for value in audit["recovery"].values():  # in the order the audit ran them
        ran += 1
        if isinstance(value, (int, float)):
            worst = value if worst is None else max(worst, value)
            if value > QUICK_STOP:
                break
    return worst, ran


def quick_line(audits: list[dict]) -> list[str]:
    full = [a for a in audits if a.get("method") and a.get("recovery") and not a.get("quick")]
    if not full:
        return []
    replayed = [(quick_worst(a), a["worst"]) for a in full]
    same = [1 for (worst, _), full_worst in replayed if worst == full_worst]
    ran = [count for (_, count), _ in replayed]
    return ["", f"Quick audit (`--quick`: no attack after the first one over {QUICK_STOP}): on the {len(full)} "
            f"audited method rows it reports the full audit's worst case in {len(same)}, running "
            f"{min(ran)}–{max(ran)} of the {len(full[0]['recovery'])} attacks (from the recorded recoveries: the same "
            "attacks in the same order)."]


def relearned_likelihood(audit: dict) -> str:
    """'unlearned (retain)' top-1 on the held-out facts after the relearning attack's largest budget."""
    after = audit.get("likelihood_relearned") or {}
    unlearned = [v for k, v in after.items() if k.startswith("unlearned")]
    retain = [v for k, v in after.items() if k.startswith("retain")]
    if not unlearned:
        return "n/a"
    return f"{unlearned[-1]:.2f}" + (f" ({retain[-1]:.2f})" if retain else "")


def f3(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


JUDGES = {"1": "containment of the answer only (before the one judge)",
          "2": "the one judge: containment of the answer, or ROUGE-L recall >= 0.8 (`metrics/judge.py`)",
          "3": "the one judge, reading a date written any common way ('February 25, 1987' = '25 February 1987')",
          "4": "judge 3, also reading address abbreviations ('Elm St.' = 'Elm Street') and a phone number's digits "
               "grouped any way ('5550142' = '555-0142')"}


def audit_judge(audit: dict) -> str:
    """The judge an audit row was measured with. Rows that do not say were measured before judge 3 with judge
    2's rule (the audit has judged containment or ROUGE-L recall from its start)."""
    return str(audit.get("judge", "2"))


def demo_tables(rows: list[dict], audits: list[dict]) -> list[str]:
    """One table per judge of "answered" the rows were measured with (newest first): accuracies measured by
    different judges are not compared in one table."""
    by_judge: dict[str, list[dict]] = {}
    for r in rows:
        by_judge.setdefault(str(r.get("judge", "1")), []).append(r)
    if len(by_judge) == 1:
        return demo_table(rows, audits)
    out: list[str] = []
    for judge in sorted(by_judge, reverse=True):
        out += [f"### Measured with judge v{judge}: {JUDGES.get(judge, 'unknown')}", ""]
        out += demo_table(by_judge[judge], audits) + [""]
    return out[:-1]


def demo_table(rows: list[dict], audits: list[dict]) -> list[str]:
    ref = rows[0]["reference"]
    lines = ["| method | forget | paraphrase | neighbour | general | likelihood top-1 | mean rank | ranked last "
             "| failed checks | audit worst (attack) | held-out likelihood after relearning (retain) | unlearn s "
             "| settings |",
             "|---" * 13 + "|"]
    for role in ("deployed", "retain"):
        a = ref[role]
        lines.append(f"| *{role} model* | {f3(a['forget'])} | {f3(a['forget_paraphrase'])} | {f3(a['neighbour'])} "
                     f"| {f3(a['general'])} | {f3(a['likelihood_top1'])} | {a['likelihood_rank']:.2f} "
                     f"| {f3(a.get('likelihood_last'))} | | | | | |")
    for r in sorted(rows, key=lambda r: order(r, audits)):
        audit = audit_for(r, audits)
        worst = "no audit row" if audit is None else f"{audit['worst']:.2f} ({audit['worst_attack']})"
        if audit is not None and audit_judge(audit) != str(r.get("judge", "1")):
            worst += f" [judge {audit_judge(audit)}]"
        held = "n/a" if audit is None else relearned_likelihood(audit)
        name = f"**{r['method']}**" if passes_bar(r, audit) else r["method"]
        failed = ", ".join(r["failed_checks"]) or "none"
        lines.append(f"| {name} | {f3(r['forget'])} | {f3(r['paraphrase'])} | {f3(r['neighbour'])} "
                     f"| {f3(r['general'])} | {f3(r['likelihood_top1'])} | {r['likelihood_rank']:.2f} "
                     f"| {f3(r.get('likelihood_last'))} | {failed} "
                     f"| {worst} | {held} | {r['unlearn_s']} | {settings_text(r['settings'])} |")
    return lines


def cost_lines(rows: list[dict], reference: str = "npo") -> list[str]:
    """Each method's unlearning time on the demo request set against the reference method's and against teaching
    the retain model from scratch (the newest row that recorded it: every row shares the one cached retain model)."""
    reteach = next((r["retain_teach_s"] for r in reversed(rows) if r.get("retain_teach_s")), None)
    base = next((r["unlearn_s"] for r in rows if r["method"] == reference), None)
    if reteach is None and base is None:
        return []

    def ratio(seconds: float, against: float | None) -> str:
        return "n/a" if against is None else f"{seconds / against:.2f}"

    lines = ["", "### Unlearning cost", "",
             f"Seconds of unlearning on the demo request (the rows above), set against {reference}'s and against "
             f"teaching the retain model from scratch, the exact alternative "
             f"({'not recorded in these rows' if reteach is None else f'{reteach:.0f} s'}). One run each on the "
             "2-core machine; a run that shared the machine with another job reads slower.", "",
             f"| method | unlearn s | × {reference} | × re-teaching |", "|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["unlearn_s"]):
        lines.append(f"| {r['method']} | {r['unlearn_s']} | {ratio(r['unlearn_s'], base)} "
                     f"| {ratio(r['unlearn_s'], reteach)} |")
    return lines


def tofu_row(result: dict, label: str | None = None) -> list[dict]:
    """Rows of a `unlearn bench tofu run|exact` result: the method's, and for an exact run also the sharded model as
    taught (role 'deployed', not judged by the bar)."""
    method = result["method"]["name"]
    overrides = list(result.get("overrides") or [])
    base = {"setting": result["setting"], "split": result["split"], "method": method, "overrides": overrides,
            "timings": result.get("timings") or {}}
    lr = ((result.get("config") or {}).get("train") or {}).get("lr")
    if lr is not None:
        base["lr"] = lr
    label = label or " ".join([method, *overrides])
    rows = [{**base, "role": "method", "label": label, "summary": pick(result["summary"])}]
    if result.get("taught"):
        rows.append({**base, "role": "deployed", "label": f"{label} (as taught, before the removal)",
                     "summary": pick(result["taught"])})
    return rows


def short_number(value: float) -> str:
    """1e-05 -> '1e-5', 0.0003 -> '3e-4', 2.5e-05 -> '2.5e-5': a rate as the labels write it."""
    mantissa, exponent = f"{value:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def sweep_label(run: dict) -> str:
    """The label of a sweep run: 'npo (TOFU defaults, lr 1e-5)', or for a grid point 'npo lr x10 (1e-4; TOFU's
    default 1e-5)' and any other override as given ('method.seed=1')."""
    from unlearn.benchmarks.sweeping import effective_overrides
    from unlearn.config import multiplier

    method, lr = run["method"]["name"], run["config"]["train"]["lr"]
    overrides = effective_overrides(run.get("overrides") or [])
    if not overrides:
        return f"{method} (TOFU defaults, lr {short_number(lr)})"
    parts = []
    for override in overrides:
        key, value = override.split("=", 1)
        factor = multiplier(value)
        if key == "train.lr" and factor:
            parts.append(f"lr {value} ({short_number(lr)}; TOFU's default {short_number(lr / factor)})")
        else:
            parts.append(override)
    return f"{method} " + ", ".join(parts)


def sweep_rows(run_dir: Path) -> list[dict]:
    """Rows of every finished run file of a `bench tofu sweep` directory (`DIR/runs/*.json`), labelled by
    `sweep_label`; failed runs have no row."""
    files = sorted((run_dir / "runs").glob("*.json"))
    if not files:
        raise SystemExit(f"no run files in {run_dir / 'runs'}: give the --out directory of `unlearn bench tofu sweep`")
    runs = [json.loads(f.read_text()) for f in files]
    return [row for run in runs if run.get("status") == "ok" for row in tofu_row(run, sweep_label(run))]


def run_identity(row: dict) -> tuple:
    """What makes two rows the same run: setting, split, method, role, the overrides that change something and the
    learning rate the run used (the same overrides give another rate once a method's benchmark settings change)."""
    from unlearn.benchmarks.sweeping import effective_overrides

    return (row["setting"], row["split"], row["method"], row["role"], tuple(effective_overrides(row["overrides"])),
            row.get("lr"))


def keep_labels(rows: list[dict], new: list[dict]) -> list[dict]:
    """`new` with the label and any timing noted by hand (e.g. `paused_s`) of the kept row of the same run, where
    there is one: adding a sweep again keeps 'ties (NPO and GradDiff merged; ...)' and its pause."""
    kept = {run_identity(r): r for r in rows}
    out = []
    for r in new:
        old = kept.get(run_identity(r))
        out.append({**r, "label": old["label"], "timings": {**old.get("timings", {}), **r["timings"]}} if old else r)
    return out


def pick(summary: dict) -> dict:
    return {k: summary.get(k) for k in TOFU_COLUMNS}


def merge_rows(rows: list[dict], new: list[dict]) -> list[dict]:
    """`rows` with each new row replacing the one of the same setting, split and label."""
    key = lambda r: (r["setting"], r["split"], r["label"])  # noqa: E731
    replaced = {key(r) for r in new}
    return [r for r in rows if key(r) not in replaced] + new


def tofu_bar(references: dict[str, dict]):
    """The deep-forgetting bar (`unlearn.benchmarks.tofu_bench.TofuBar`) from the target's and the ceiling's rows."""
    from unlearn.benchmarks.tofu_bench import TofuBar

    return TofuBar.of(references["target"], references["ceiling"])


def meets_tofu_bar(row: dict, bar) -> bool:
    return bar is not None and bar.met_by(row["summary"])


def run_rank(row: dict, bar) -> tuple:
    """Sort key of a run, best first: meets the bar, keeps the utility the bar asks for, higher forget quality."""
    keeps = bar is not None and row["summary"]["model_utility"] >= bar.model_utility
    return (not meets_tofu_bar(row, bar), not keeps, -row["summary"]["forget_quality"], row["label"])


def runs_by_method(rows: list[dict]) -> dict[str, list[dict]]:
    by_method: dict[str, list[dict]] = {}
    for r in rows:
        if r["role"] == "method":
            by_method.setdefault(r["method"], []).append(r)
    return by_method


def best_runs(rows: list[dict], bar) -> list[tuple[dict, list[dict], int]]:
    """Per method, its best run (by `run_rank`), all its runs and how many meet the bar; best method first."""
    best = [(min(runs, key=lambda r: run_rank(r, bar)), runs, sum(meets_tofu_bar(r, bar) for r in runs))
            for runs in runs_by_method(rows).values()]
    return sorted(best, key=lambda b: run_rank(b[0], bar))


def rates_tried(runs: list[dict]) -> str:
    """The learning rates of a method's runs, lowest first ('–' where no run recorded one)."""
    rates = sorted({r["lr"] for r in runs if r.get("lr") is not None})
    return ", ".join(short_number(lr) for lr in rates) or "–"


def best_runs_table(rows: list[dict], bar) -> list[str]:
    """One line per method: which method beats which, over every run kept for it (settings and seeds)."""
    out = ["One line per method: its best run among those kept (best: meets the bar, then keeps model utility ≥ the "
           "bar's, then the highest forget quality). \"meet the bar\" counts the runs that do, so a method that "
           "meets it at one seed of three says so; \"learning rates tried\" is the tuning behind its best run.", "",
           "| method | runs | meet the bar | learning rates tried | best run | forget_quality | model_utility |",
           "|---|---|---|---|---|---|---|"]
    for row, runs, meeting in best_runs(rows, bar):
        name = f"**{row['method']}**" if meeting else row["method"]
        out.append(f"| {name} | {len(runs)} | {meeting} | {rates_tried(runs)} | {row['label']} | "
                   f"{f3(row['summary']['forget_quality'])} | {f3(row['summary']['model_utility'])} |")
    return out + [""]


def tofu_tables(rows: list[dict]) -> list[str]:
    out = []
    for setting, split in sorted({(r["setting"], r["split"]) for r in rows}):
        mine = [r for r in rows if (r["setting"], r["split"]) == (setting, split)]
        references = {r["role"]: r["summary"] for r in mine if r["role"] in TOFU_ROLES}
        bar = tofu_bar(references) if set(TOFU_ROLES) <= set(references) else None
        out += [f"### TOFU {setting} {split}", ""]
        if bar:
            out += [f"The bar: forget quality ≥ {bar.forget_quality:.3f} (0.5 or half the ceiling's, whichever is lower) "
                    f"and model utility ≥ {bar.model_utility:.3f} (0.95 of the target's); rows that meet it are in bold.", ""]
            out += best_runs_table(mine, bar) + ["Every run:", ""]
        out += ["| model | " + " | ".join(TOFU_COLUMNS) + " |", "|---" * (len(TOFU_COLUMNS) + 1) + "|"]

        methods = sorted((r for r in mine if r["role"] not in TOFU_ROLES),
                         key=lambda r: (r["role"] != "method", *run_rank(r, bar)))  # noqa: B023
        for r in [next(x for x in mine if x["role"] == role) for role in TOFU_ROLES if role in references] + methods:
            name = {"target": "*target*", "retain": "*retain model (gold)*",
                    "ceiling": "*ceiling: retain model, another seed*"}.get(r["role"], r["label"])
            if r["role"] == "method" and meets_tofu_bar(r, bar):
                name = f"**{name}**"
            cells = [f3(r["summary"].get(k)) if k != "privleak" else f"{r['summary'][k]:.1f}" for k in TOFU_COLUMNS]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def muse_rows(sweep: dict) -> list[dict]:
    """Rows of an `unlearn bench muse sweep` result: the target and retain models, then every run (failed ones too)."""
    rows = [{"role": role, "label": role, "summary": {k: sweep[role].get(k) for k, _ in MUSE_COLUMNS}}
            for role in ("target", "retain")]
    for run in sweep["runs"]:
        ok = run.get("status") == "ok"
        rows.append({"role": "method", "label": run["label"], "method": run["method"]["name"],
                     "overrides": run.get("overrides") or [], "status": run.get("status"),
                     "error": None if ok else run.get("error"),
                     "summary": {k: run["summary"].get(k) for k, _ in MUSE_COLUMNS} if ok else None,
                     "unlearn_s": (run.get("timings") or {}).get("unlearn_s")})
    return rows


def meets_muse_bar(summary: dict | None, target: dict, retain: dict) -> bool:
    """Our reading of MUSE: forgotten as the retain model, utility kept, no privacy leak either way."""
    return summary is not None and all(summary[k] <= retain[k] + MUSE_FORGET_MARGIN for k in ("verbmem_f", "knowmem_f")) \
        and summary["knowmem_r"] >= MUSE_UTILITY_SHARE * target["knowmem_r"] and abs(summary["privleak"]) <= MUSE_PRIVLEAK


def muse_table(rows: list[dict]) -> list[str]:
    refs = {r["role"]: r["summary"] for r in rows if r["role"] in ("target", "retain")}
    out = ["| model | " + " | ".join(h for _, h in MUSE_COLUMNS) + " | unlearn s |",
           "|---" * (len(MUSE_COLUMNS) + 2) + "|"]
    methods = sorted((r for r in rows if r["role"] == "method"),
                     key=lambda r: (r["summary"] is None, not meets_muse_bar(r["summary"], refs["target"], refs["retain"]),
                                    r["summary"]["knowmem_f"] if r["summary"] else 0, r["label"]))
    for r in [x for x in rows if x["role"] != "method"] + methods:
        name = {"target": "*target*", "retain": "*retain model (gold)*"}.get(r["role"], r["label"])
        if r["summary"] is None:
            out.append(f"| {name} | failed: {r['error'].splitlines()[0][:90]} |" + " |" * len(MUSE_COLUMNS))
            continue
        if r["role"] == "method" and meets_muse_bar(r["summary"], refs["target"], refs["retain"]):
            name = f"**{name}**"
        cells = [f3(r["summary"][k]) if k != "privleak" else f"{r['summary'][k]:.1f}" for k, _ in MUSE_COLUMNS]
        seconds = f"{r['unlearn_s']:.0f}" if r.get("unlearn_s") else ""
        out.append(f"| {name} | " + " | ".join(cells) + f" | {seconds} |")
    return out


def page(rows: list[dict], audits: list[dict], tofu: list[dict] | None = None, muse: list[dict] | None = None) -> str:
    out = ["# Results", "",
           "Generated by `python benchmarks/results_page.py` from the rows in `docs/results/` (do not edit by hand).",
           "How each number is measured, and the history behind it: [benchmarks.md](benchmarks.md).", ""]
    out += ["## Every method on the demo request", "",
            "The demo's request (forget one of six taught fictitious people; `unlearn demo`), each method at its demo "
            "settings (`benchmark_settings[\"demo\"]` in its file), on the 2-core CPU machine. The bar: every demo "
            "check passed — forgotten as plainly as by the retain model, other people ≥ 0.9 and general knowledge "
            "≥ 0.9 of the deployed model's, fluent, and **both sides of the likelihood test** (the truth ranked first "
            "no more often than by the retain model + 0.05, and ranked last no more often than by the retain model or "
            "chance, whichever is higher, + 0.05) — and the audit's worst-case recovery "
            f"≤ {AUDIT_BAR:.2f} with relearning among the attacks. Methods that meet it are in bold; rows are ordered "
            "by that, then by failed checks and likelihood. Chance for the likelihood test: top-1 and ranked last "
            "0.100, mean rank 5.5. \"ranked last\" n/a: measured before that check, so the row cannot meet the bar "
            "until measured again. \"[judge N]\" after an audit's worst case: the audit was measured with another "
            "judge of \"answered\" than the row. \"no audit row\": no audit at these "
            "settings in docs/results/ yet (older audits at other settings are in benchmarks.md).", ""]
    if rows:
        out += demo_tables(rows, audits) + quick_line(audits) + cost_lines(rows)
    else:
        out.append("No rows yet.")
    out += ["", f"Methods measured: {len({r['method'] for r in rows})} (`unlearn ls methods` lists every method; "
            "measure one with `python benchmarks/demo_methods.py --methods NAME --json docs/results/demo_methods.json`, "
            "then run this command)."]
    if tofu:
        out += ["", "## TOFU mini", "",
                "Each row is one `unlearn bench tofu run` (or `exact`) at the settings in its label, evaluated with the "
                "TOFU protocol (forget quality: KS-test p-value of forget truth ratios against the retain model; "
                "model utility: harmonic mean of nine retain, real-author and world-fact scores; unseen_forget_quality: "
                "the same test against the model's own truth ratios on five never-taught authors, needing no retain "
                "model, n/a for runs evaluated before it existed). The ceiling row is "
                "a second retain model, another seed of the same recipe: what an exact method can reach. Only runs whose "
                "result.json was kept have a row (add one with `--add-tofu`, or every finished run of a sweep with "
                "`--add-tofu-sweep DIR`).", ""]
        out += tofu_tables(tofu)
    if muse:
        out += ["", "## MUSE-News mini", "",
                "One `unlearn bench muse sweep` (the mini setting: the embedded model taught about 7k tokens of "
                "MUSE-News forget texts and 6k of retain texts; README *Benchmarks: MUSE-News*). VerbMem and KnowMem "
                "are ROUGE-L F1 in [0, 1]; KnowMem retain is MUSE's utility; PrivLeak 0 is the retain model, negative "
                f"means the forget texts still look trained on. In bold, our reading of a success: VerbMem and KnowMem "
                f"forget within {MUSE_FORGET_MARGIN} of the retain model's, KnowMem retain ≥ {MUSE_UTILITY_SHARE} of "
                f"the target's and |PrivLeak| ≤ {MUSE_PRIVLEAK:.0f}.", ""]
        out += muse_table(muse)
    return "\n".join(out) + "\n"


def unmeasured(rows: list[dict], registered: list[str]) -> list[str]:
    """Registered methods without a demo row (printed by the command, not written to the page, so that adding a
    method does not make the page stale)."""
    measured = {r["method"] for r in rows}
    return [m for m in registered if m not in measured]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with docs/results.md instead of writing it")
    parser.add_argument("--add-tofu", metavar="RESULT", help="add (or replace) the rows of a TOFU run's result.json")
    parser.add_argument("--label", help="the row's label for --add-tofu (default: method and overrides)")
    parser.add_argument("--add-tofu-sweep", metavar="DIR", type=Path,
                        help="add (or replace) a row for every finished run of a `unlearn bench tofu sweep --out DIR`")
    parser.add_argument("--add-tofu-reference", nargs=2, metavar=("ROLE", "EVAL"),
                        help=f"add a reference row ({', '.join(TOFU_ROLES)}) from the setting's cached evaluation file")
    parser.add_argument("--add-muse", metavar="SWEEP", help="replace the MUSE rows with a `bench muse sweep` muse.json")
    parser.add_argument("--setting", default="mini30", help="setting of a --add-tofu-reference row (default mini30)")
    parser.add_argument("--split", default="forget10", help="split of a --add-tofu-reference row (default forget10)")
    args = parser.parse_args()
    from unlearn.methods import METHODS

    if args.add_tofu or args.add_tofu_reference or args.add_tofu_sweep:
        if args.add_tofu_sweep:
            new = keep_labels(load("tofu.json"), sweep_rows(args.add_tofu_sweep))
        elif args.add_tofu:
            new = tofu_row(json.loads(Path(args.add_tofu).read_text()), args.label)
        else:
            role, path = args.add_tofu_reference
            if role not in TOFU_ROLES:
                parser.error(f"ROLE must be one of {', '.join(TOFU_ROLES)}")
            new = [{"setting": args.setting, "split": args.split, "method": role, "overrides": [], "role": role,
                    "label": role, "summary": pick(json.loads(Path(path).read_text())["summary"])}]
        (RESULTS / "tofu.json").write_text(json.dumps(merge_rows(load("tofu.json"), new), indent=1) + "\n")
    if args.add_muse:
        (RESULTS / "muse.json").write_text(json.dumps(muse_rows(json.loads(Path(args.add_muse).read_text())),
                                                      indent=1) + "\n")
    rows = load("demo_methods.json")
    text = page(rows, load("audit_demo.json"), load("tofu.json"), load("muse.json"))
    missing = unmeasured(rows, METHODS.names())
    if missing:
        print("not measured on the demo yet: " + ", ".join(missing), file=sys.stderr)
    if args.check:
        if not PAGE.exists() or PAGE.read_text() != text:
            print("docs/results.md is out of date: run python benchmarks/results_page.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
