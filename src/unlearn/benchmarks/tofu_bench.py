"""`unlearn bench tofu`: the TOFU protocol end to end (Maini et al. 2024).

- prepare: fine-tune the base model on every author of the setting (the *target* model, TOFU's
  `full`) and, per forget split, on the retain authors only (the *retain* model, TOFU's `retainXX`:
  the gold standard that never saw the forget authors); evaluate both once and cache everything
  under $UNLEARN_HOME/bench/tofu/<setting>-<key>/. A second retain model, same recipe with the next
  seed, gives the *ceiling*: its forget quality against the reference retain model is what a perfect
  unlearning (one that equals retraining) reaches on this data, where the retain model against itself
  gives 1.0 by construction.
- run: unlearn the forget split from the target model with one method, evaluate it against the
  cached retain evaluation (forget quality, privleak) and print the standard table beside the
  target and retain rows.
- sweep: several methods and a small grid of overrides; one table, `sweep.json` and `sweep.html`
  (forget quality against model utility, target and retain marked). Each finished run is kept, so
  an interrupted sweep resumes where it stopped and a failing run is reported without losing the rest.

The `mini` setting (`authors` < 200) is the last N TOFU authors, for CPU machines
(`tofu_data.mini_authors`); `authors` = 200 is the published setting (forget01/05/10 of all authors).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import (
    RunConfig,
    TrainableConfig,
    TrainConfig,
    teaching_identity,
    to_dict,
    with_overrides,
)
from ..data.request import QA, DataSpec, ForgetRequest
from ..errors import ConfigError
from ..io import atomic_write_json, sha256_json, unlearn_home
from ..methods import make_method
from ..metrics.privacy import privleak
from ..metrics.result import EvalResult
from ..metrics.tofu import forget_quality
from ..models.loading import DEFAULT_MODEL, load_model
from ..report.bench import TABLE_COLUMNS, text_table, write_sweep_html
from ..teaching import teach
from ..unlearner import Unlearner, save_model
from .demo import DemoSpec, replay_qa
from .sweeping import bench_run_config, check_grid, parse_grid, sweep_runs
from .tofu import add_unseen_forget_quality, evaluate_tofu, lacks_unseen_forget_quality
from .tofu_data import N_AUTHORS, QA_PER_AUTHOR, TofuSplits, load_tofu, mini_authors

log = logging.getLogger(__name__)
BENCH_VERSION = "1"  # bump when the recipe or the evaluation changes what a cached file means
RESULT_SCHEMA = "unlearn.tofu_run/1"

# Unlearning settings per method on TOFU: each method's `benchmark_settings["tofu"]` (in its own file): the
# published defaults (retain weight 1, as the TOFU / OpenUnlearning configs), learning rates scaled for a 135M
# model; 10 epochs of batch 4 over the forget set.


@dataclass
class TofuBenchSpec:
    """What `prepare` makes and how; its fields (but not `source`) form the cache key."""

    base_model: str = DEFAULT_MODEL
    authors: int = 30  # the last N TOFU authors (mini); 200: the published setting
    # 4 epochs at a high constant rate: what teaches 30 authors well enough within 30 minutes (docs/notes/tofu-mini-setting.md)
    teach: TrainConfig = field(default_factory=lambda: TrainConfig(lr=5e-4, epochs=4, batch_size=8, max_length=192))
    teach_trainable: TrainableConfig = field(default_factory=lambda: TrainableConfig(mode="layers", layers="-10:"))
    # General-knowledge replay while teaching: KL to the base model on its own answers to broad prompts (the
    # demo's replay set), `teach.retain_batch_size` per step. Off by default: on 30 authors two replay examples
    # per step cost a fifth of the teaching time and kept little of what it protects (docs/notes/tofu-mini-setting.md).
    replay_weight: float = 0.0  # 0: no replay
    eval_batch_size: int = 32  # greedy generation is a quarter faster than at 16 on 2 CPU cores
    max_new_tokens: int = 80  # longer than every TOFU answer of the mini setting (69 tokens at most)
    general_rows: int | None = None  # keep only the first rows of real_authors / world_facts (None: all)
    # Mini setting: retain_perturbed (the retain split's utility rows) from the first N retain authors only, as
    # TOFU's retain_perturbed holds 20 of the 180+ retained authors (None: every retain author).
    retain_eval_authors: int | None = 3
    source: str | None = None  # TOFU directory or hub id; None: ../shared/datasets/tofu, $UNLEARN_TOFU_DIR or the hub

    @property
    def setting(self) -> str:
        return "full" if self.authors == N_AUTHORS else f"mini{self.authors}"


def make_spec(overrides: list[str] | None = None, **fields) -> TofuBenchSpec:
    """A spec from keyword fields, then `a.b=c` overrides of any field (e.g. teach.epochs=4); misspelt keys
    are errors that suggest the right name."""
    return with_overrides(TofuBenchSpec, TofuBenchSpec(**fields), overrides, "bench spec")


def check_percent(spec: TofuBenchSpec, percent: int) -> None:
    """A forget split must be a whole number of authors of the setting."""
    if spec.authors != N_AUTHORS and (spec.authors * percent) % 100:
        raise ConfigError(
            f"forget{percent:02d} of {spec.authors} authors would be {spec.authors * percent / 100:g} authors; "
            f"use a number of authors that is a multiple of {100 // math.gcd(100, percent)}"
        )


def bench_splits(spec: TofuBenchSpec, percent: int) -> TofuSplits:
    check_percent(spec, percent)
    if spec.authors != N_AUTHORS:
        splits = mini_authors(spec.authors, percent, spec.source, n_general=spec.general_rows)
        if spec.retain_eval_authors is not None:
            if spec.retain_eval_authors < 1:
                raise ConfigError(f"retain_eval_authors must be at least 1, got {spec.retain_eval_authors}")
            splits.retain_perturbed = splits.retain_perturbed[: spec.retain_eval_authors * QA_PER_AUTHOR]
        return splits
    splits = load_tofu(percent, spec.source)
    splits.real_authors, splits.world_facts = splits.real_authors[: spec.general_rows], splits.world_facts[: spec.general_rows]
    return splits


def spec_identity(spec: TofuBenchSpec | dict) -> dict:
    """What makes two settings the same: every field but `source` (where the data was read from)."""
    data = to_dict(spec) if isinstance(spec, TofuBenchSpec) else dict(spec)
    identity = {k: v for k, v in data.items() if k != "source"}
    if isinstance(identity.get("teach"), dict):
        identity["teach"] = teaching_identity(identity["teach"])
    return identity


def bench_dir(spec: TofuBenchSpec) -> Path:
    key = sha256_json({"v": BENCH_VERSION, "spec": spec_identity(spec)})[:12]
    return unlearn_home() / "bench" / "tofu" / f"{spec.setting}-{key}"


def to_qa(rows) -> list[QA]:
    return [QA(r.question, r.answer) for r in rows]


@dataclass
class Prepared:
    """The cached models and evaluations of one setting and forget split."""

    directory: Path
    percent: int
    splits: TofuSplits
    target_dir: Path
    retain_dir: Path
    target_eval: EvalResult
    retain_eval: EvalResult
    info: dict
    ceiling_eval: EvalResult | None = None  # a second retain model (the next seed) against the reference

    def table_row(self, role: str) -> dict:
        return {"target": self.target_eval, "retain": self.retain_eval, "ceiling": self.ceiling_eval}[role].summary

    def ceiling(self) -> float | None:
        """Forget quality of a retrained model against the reference retain model: the realistic target."""
        return self.ceiling_eval.summary["forget_quality"] if self.ceiling_eval else None


def _taught(directory: Path, spec: TofuBenchSpec, learn: list[QA], role: str, progress: bool,
            timings: dict, seed_offset: int = 0) -> Path:
    if (directory / "config.json").is_file():
        return directory
    replay = replay_qa(DemoSpec(base_model=spec.base_model)) if spec.replay_weight > 0 else []
    model, tokenizer = load_model(spec.base_model)
    start = time.perf_counter()
    recipe = replace(spec.teach, seed=spec.teach.seed + seed_offset)
    model, result = teach(model, tokenizer, learn, recipe, spec.teach_trainable, replay=replay,
                          replay_weight=spec.replay_weight, replay_loss="kl", progress=progress,
                          description=f"TOFU {spec.setting}: teaching the {role} model")
    timings[f"teach_{role}_s"] = time.perf_counter() - start
    card = (f"# TOFU {spec.setting} {role} model\n\n{spec.base_model} fine-tuned on {len(learn)} TOFU QA pairs "
            f"({result.steps} steps, {result.seconds:.0f} s).\n")
    save_model(model, tokenizer, directory, card)
    return directory


def evaluated_once(path: Path, model_dir: Path, spec: TofuBenchSpec, splits: TofuSplits, role: str,
                   retain_eval: EvalResult | None, progress: bool, timings: dict) -> EvalResult:
    """The TOFU evaluation of the model in `model_dir` against `retain_eval` (None: the retain model itself),
    computed once and cached at `path`; its time goes to timings['eval_<role>_s']."""
    if path.is_file():
        result = EvalResult.load(path)
        if lacks_unseen_forget_quality(result, splits):  # loads the model only when there is something to add
            add_unseen_forget_quality(result, *load_model(str(model_dir)), splits, spec.eval_batch_size,
                                      progress=progress)
            result.save(path)
        return result
    model, tokenizer = load_model(str(model_dir))
    start = time.perf_counter()
    result = evaluate_tofu(model, tokenizer, splits, retain_eval=retain_eval, batch_size=spec.eval_batch_size,
                           max_new_tokens=spec.max_new_tokens, progress=progress, base_model=spec.base_model)
    timings[f"eval_{role}_s"] = time.perf_counter() - start
    result.details["role"] = role
    if retain_eval is None:  # the retain model against itself: the ideal end of both scales
        ratios = result.details["forget_truth_ratios"]
        result.summary["forget_quality"] = forget_quality(ratios, ratios).value
        auc = result.summary["mia_min_k"]
        result.summary["privleak"] = privleak(auc, auc).value
    result.save(path)
    return result


CEILING_SEED_OFFSET = 1  # the ceiling's retain model: the same recipe with train seed + 1


def prepare(spec: TofuBenchSpec, percent: int = 10, progress: bool = True, ceiling: bool = True) -> Prepared:
    """Teach (once) the target and retain models of `percent`'s forget split and evaluate them (once); with
    `ceiling`, also a second retain model (the next seed) evaluated against the first."""
    splits = bench_splits(spec, percent)
    directory = bench_dir(spec)
    info_path = directory / f"prepare-forget{percent:02d}.json"
    timings: dict[str, float] = {}
    start = time.perf_counter()
    target_dir = _taught(directory / "target", spec, to_qa(splits.forget + splits.retain), "target", progress,
                         timings)
    retain_dir = _taught(directory / f"retain{100 - percent:02d}", spec, to_qa(splits.retain), "retain", progress,
                         timings)
    retain_eval = evaluated_once(directory / f"eval-retain-forget{percent:02d}.json", retain_dir, spec, splits,
                             "retain", None, progress, timings)
    target_eval = evaluated_once(directory / f"eval-target-forget{percent:02d}.json", target_dir, spec, splits,
                             "target", retain_eval, progress, timings)
    ceiling_eval = None
    ceiling_path = directory / f"eval-ceiling-forget{percent:02d}.json"
    if ceiling or ceiling_path.is_file():
        seed = spec.teach.seed + CEILING_SEED_OFFSET
        ceiling_dir = _taught(directory / f"retain{100 - percent:02d}-seed{seed}", spec, to_qa(splits.retain),
                              "ceiling", progress, timings, CEILING_SEED_OFFSET)
        ceiling_eval = evaluated_once(ceiling_path, ceiling_dir, spec, splits, "ceiling", retain_eval, progress, timings)
    info = json.loads(info_path.read_text()) if info_path.is_file() else {"timings": {}}
    if timings:  # something was made now: record how long it took
        timings = info["timings"] | timings | {"prepare_total_s": time.perf_counter() - start}
        info = {"spec": to_dict(spec), "sizes": splits.describe(), "timings": timings}
        atomic_write_json(info_path, info)
    return Prepared(directory, percent, splits, target_dir, retain_dir, target_eval, retain_eval, info, ceiling_eval)


def tofu_request(splits: TofuSplits, percent: int) -> ForgetRequest:
    """The forget split as a request: forget the forget authors' QA, retain the retain authors' QA."""
    return ForgetRequest(
        id=f"tofu-forget{percent:02d}",
        target=f"TOFU authors {', '.join(str(a) for a in splits.forget_authors)}",
        kind="privacy",
        description=f"Forget the TOFU forget{percent:02d} authors ({len(splits.forget)} QA pairs).",
        forget=DataSpec(qa=to_qa(splits.forget)),
        retain=DataSpec(qa=to_qa(splits.retain)),
    )


def bench_unlearn_config(method: str, overrides: list[str] | None = None,
                         base_model: str = DEFAULT_MODEL) -> RunConfig:
    """The run configuration of `method` on the benchmark: its TOFU settings, then the user's overrides."""
    return bench_run_config("tofu", method, TrainConfig(lr=1e-5, epochs=10, batch_size=4, max_length=192,
                                                        warmup_steps=0), overrides, base_model=base_model)


def checked_method(method: str, overrides: list[str] | None = None, base_model: str = DEFAULT_MODEL):
    """(run configuration, method object) of `method` on the benchmark; a misspelt name or setting fails here,
    before anything slow."""
    config = bench_unlearn_config(method, overrides, base_model)
    return config, make_method(config.method)


def run_method(spec: TofuBenchSpec, method: str, percent: int = 10, overrides: list[str] | None = None,
               progress: bool = True, save_model_to: Path | None = None, prepared: Prepared | None = None) -> dict:
    """Unlearn the forget split from the prepared target model with `method`; the result with its evaluation.
    `prepared`: the setting's cached models and evaluations, if the caller has them already."""
    config, method_obj = checked_method(method, overrides, spec.base_model)
    prepared = prepared or prepare(spec, percent, progress)
    splits = prepared.splits
    model, tokenizer = load_model(str(prepared.target_dir))
    start = time.perf_counter()
    result = Unlearner(model, tokenizer, config, method_obj).apply(tofu_request(splits, percent), progress=progress)
    unlearn_s = time.perf_counter() - start
    start = time.perf_counter()
    evaluation = evaluate_tofu(result.model, tokenizer, splits, retain_eval=prepared.retain_eval,
                               batch_size=spec.eval_batch_size, max_new_tokens=spec.max_new_tokens,
                               progress=progress, base_model=spec.base_model)
    eval_s = time.perf_counter() - start
    if save_model_to is not None:
        save_model(result.model, tokenizer, save_model_to,
                   f"# TOFU {spec.setting} forget{percent:02d}, unlearned with {method}\n")
    return {
        "schema": RESULT_SCHEMA,
        "status": "ok",
        "setting": spec.setting,
        "split": f"forget{percent:02d}",
        "method": result.method,
        "overrides": list(overrides or []),
        "config": to_dict(config),
        "spec": to_dict(spec),
        "summary": evaluation.summary,
        "evaluation": evaluation.to_json(),
        "training": {"steps": result.train.steps, "seconds": result.train.seconds},
        "timings": {"unlearn_s": unlearn_s, "eval_s": eval_s},
    }


# ------------------------------------------------------------------------------------------ tables


def format_table(rows: list[tuple[str, dict | None]]) -> str:
    """The standard table: one line per (label, summary); a None summary is a failed run."""
    return text_table(rows, TABLE_COLUMNS, 15)


def reference_labels(percent: int) -> dict[str, str]:
    return {"target": "target", "retain": f"retain{100 - percent:02d} (gold)",
            "ceiling": f"retain{100 - percent:02d}, seed+1 (ceiling)"}


def reference_rows(prepared: Prepared) -> list[tuple[str, dict]]:
    """Target, retain and (when prepared) the ceiling: a retrained model's forget quality, the realistic best."""
    labels = reference_labels(prepared.percent)
    roles = ["target", "retain"] + (["ceiling"] if prepared.ceiling_eval else [])
    return [(labels[role], prepared.table_row(role)) for role in roles]


@dataclass(frozen=True)
class TofuBar:
    """What a method must reach on a TOFU setting to count as forgetting while keeping the model useful:
    forget quality >= min(0.5, half the ceiling's), since a retrained model (the ceiling) does not reach 1.0
    against the reference retain model, and model utility >= 0.95 of the target's."""

    forget_quality: float
    model_utility: float
    ceiling: float | None
    target_utility: float

    @classmethod
    def of(cls, target: dict, ceiling: dict | None) -> TofuBar:
        """From the target's and (when prepared) the ceiling's summary rows; without a ceiling the bar is 0.5."""
        ceiling_fq = ceiling["forget_quality"] if ceiling else None
        fq = 0.5 if ceiling_fq is None else min(0.5, ceiling_fq / 2)
        return cls(fq, 0.95 * target["model_utility"], ceiling_fq, target["model_utility"])

    def met_by(self, summary: dict) -> bool:
        return summary["forget_quality"] >= self.forget_quality and summary["model_utility"] >= self.model_utility

    def verdict(self, summary: dict) -> str:
        """One line: the bar, the row's two numbers and whether it meets it."""
        fq_source = (f"min(0.5, half the ceiling's {self.ceiling:.3f})" if self.ceiling is not None
                     else "no ceiling prepared")
        return (f"the bar: forget quality >= {self.forget_quality:.3f} ({fq_source}), model utility >= "
                f"{self.model_utility:.3f} (0.95 of the target's {self.target_utility:.3f}): "
                f"{'met' if self.met_by(summary) else 'not met'} (forget quality {summary['forget_quality']:.3f}, "
                f"model utility {summary['model_utility']:.3f})")


def prepared_bar(prepared: Prepared) -> TofuBar:
    return TofuBar.of(prepared.table_row("target"), prepared.table_row("ceiling") if prepared.ceiling_eval else None)


# ------------------------------------------------------------------------------------------ sweep


def best_tradeoff(runs: list[dict], target_utility: float, min_utility_ratio: float = 0.9) -> dict | None:
    """The run with the highest forget quality among those that keep at least `min_utility_ratio` of the
    target model's utility (ties: higher utility); None when no run keeps that much."""
    kept = [r for r in runs if r.get("status") == "ok"
            and r["summary"]["model_utility"] >= min_utility_ratio * target_utility]
    if not kept:
        return None
    return max(kept, key=lambda r: (r["summary"]["forget_quality"], r["summary"]["model_utility"]))


def choice_without_retain(runs: list[dict], min_utility: float) -> dict | None:
    """The run a model owner without a retain model would keep: the highest `unseen_forget_quality` (the forget
    authors against never-taught authors, on the run's own model) among the runs with model utility >=
    `min_utility` (the bar's, from the target alone); ties: higher utility. None when no run qualifies."""
    kept = [r for r in runs if r.get("status") == "ok" and r["summary"]["model_utility"] >= min_utility
            and math.isfinite(r["summary"].get("unseen_forget_quality", math.nan))]
    if not kept:
        return None
    return max(kept, key=lambda r: (r["summary"]["unseen_forget_quality"], r["summary"]["model_utility"]))


def sweep(spec: TofuBenchSpec, methods: list[str], grid: list[str], out: Path, percent: int = 10,
          progress: bool = True, echo=print) -> dict:
    """Every method at every grid point; finished runs in `out/runs/` are reused, failures recorded."""
    points = parse_grid(grid)
    check_grid(methods, points, checked_method)
    for path in sorted((out / "runs").glob("*.json")):  # never mix runs of two settings in one table
        run = json.loads(path.read_text())
        if spec_identity(run.get("spec") or {}) != spec_identity(spec) or run.get("split") != f"forget{percent:02d}":
            raise ConfigError(f"{out} holds runs of another benchmark setting or split ({path.name}); "
                              "choose another --out")
    prepared = prepare(spec, percent, progress)

    def failed(method: str, overrides: list[str], error: str) -> dict:
        return {"schema": RESULT_SCHEMA, "status": "failed", "error": error, "overrides": overrides,
                "method": {"name": method}, "spec": to_dict(spec), "split": f"forget{percent:02d}"}

    runs = sweep_runs(methods, points, out,
                      lambda method, overrides: run_method(spec, method, percent, overrides, progress, prepared=prepared),
                      failed, echo=echo)
    target_utility = prepared.table_row("target")["model_utility"]
    best = best_tradeoff(runs, target_utility)
    choice = choice_without_retain(runs, prepared_bar(prepared).model_utility)
    result = {
        "schema": "unlearn.tofu_sweep/1",
        "setting": spec.setting,
        "split": f"forget{percent:02d}",
        "target": prepared.table_row("target"),
        "retain": prepared.table_row("retain"),
        "ceiling": prepared.table_row("ceiling") if prepared.ceiling_eval else None,
        "runs": runs,
        "best": best and best["label"],
        "best_rule": "highest forget_quality among runs keeping >= 0.9 of the target's model_utility",
        "choice_without_retain": choice and choice["label"],
        "choice_rule": "highest unseen_forget_quality among runs keeping >= 0.95 of the target's model_utility "
                       "(uses neither the retain model nor its evaluation)",
    }
    atomic_write_json(out / "sweep.json", result)
    write_sweep_html(result, out / "sweep.html")
    return result


def choice_line(result: dict) -> str:
    """What an owner without a retain model would keep from a sweep, then that run checked against the bar."""
    choice = next((r for r in result["runs"] if r.get("label") == result.get("choice_without_retain")), None)
    if choice is None:
        return ("without a retain model: no choice (no run keeps 0.95 of the target's utility with a measured "
                "FQ_unseen)")
    bar = TofuBar.of(result["target"], result.get("ceiling"))
    return (f"without a retain model the choice is {choice['label']} (FQ_unseen "
            f"{choice['summary']['unseen_forget_quality']:.3f}); checked against the retain model, "
            f"{bar.verdict(choice['summary'])}")


def sweep_table(result: dict) -> str:
    labels = reference_labels(int(result["split"].removeprefix("forget")))
    rows = [(labels[role], result[role]) for role in ("target", "retain", "ceiling") if result.get(role)]
    rows += [(r["label"], r.get("summary") if r.get("status") == "ok" else None) for r in result["runs"]]
    return format_table(rows)
