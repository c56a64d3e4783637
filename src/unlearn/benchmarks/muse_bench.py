"""`unlearn bench muse`: MUSE-News (Shi et al. 2024) end to end in the mini setting (`muse_data`).

- prepare: teach the base model the forget and retain corpora (the *target* model) and the retain corpus only
  (the *retain* model, the one that never saw the forget texts); evaluate both once and cache everything under
  $UNLEARN_HOME/bench/muse/mini-<key>/.
- run: unlearn the forget corpus (as texts, with the retain corpus as retain data) from the target with one
  method and print the MUSE table beside the target and retain rows.
- sweep: several methods (and a grid of settings) into one table and `muse.json`; finished runs are reused.

The metrics, as MUSE defines them (metrics/muse.py, metrics/mia.py, metrics/privacy.py):
  verbmem_f   VerbMem on the forget excerpts: ROUGE-L F1 of greedy continuations (lower = less memorised);
  knowmem_f   KnowMem on the forget questions, asked after the published few-shot examples (lower is better);
  knowmem_r   KnowMem on the retain questions: MUSE's utility (higher is better, the retain model's is the bar);
  mia_min_k   Min-40% ROC-AUC, forget texts vs holdout texts (our orientation: 1 = forget looks trained on);
  privleak    (AUC_unlearned - AUC_retain) / AUC_retain in MUSE's orientation, percent: 0 is ideal, negative
              under-unlearning (the forget texts still look trained on), positive over-unlearning.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import (
    RunConfig,
    TrainableConfig,
    TrainConfig,
    teaching_identity,
    to_dict,
    with_overrides,
)
from ..data.request import DataSpec, ForgetRequest
from ..errors import ConfigError
from ..io import atomic_write_json, sha256_json, unlearn_home
from ..methods import make_method
from ..metrics.base import MetricResult
from ..metrics.mia import auc_result, min_k_scores, text_scores
from ..metrics.muse import knowledge_memorization, verbatim_memorization
from ..metrics.privacy import privleak
from ..metrics.result import EvalResult
from ..models.loading import DEFAULT_MODEL, load_model, load_tokenizer
from ..report.bench import text_table
from ..teaching import teach
from ..unlearner import Unlearner, save_model
from .muse_data import MuseMini, load_muse, mini_setting
from .sweeping import bench_run_config, check_grid, parse_grid, sweep_runs

BENCH_VERSION = "1"  # bump when the recipe or the evaluation changes what a cached file means
SCHEMA = "unlearn.muse_eval/1"
RESULT_SCHEMA = "unlearn.muse_run/1"
# summary key -> (registered metric, higher is better in this use)
KEYS = {"verbmem_f": ("verbmem_rouge", False), "knowmem_f": ("knowmem_rouge", False),
        "knowmem_r": ("knowmem_rouge", True), "mia_min_k": ("mia_min_k", False), "privleak": ("privleak", True)}
TABLE_COLUMNS = (("verbmem_f", "VerbMem_f"), ("knowmem_f", "KnowMem_f"), ("knowmem_r", "KnowMem_r"),
                 ("mia_min_k", "MinK_AUC"), ("privleak", "PrivLeak"))


@dataclass
class MuseBenchSpec:
    """What `prepare` makes and how; its fields (but not `source`) form the cache key."""

    base_model: str = DEFAULT_MODEL
    verbmem_items: int = 8
    knowmem_items: int = 12  # 13 retain questions have their source passage in privleak/retain2.json
    privleak_items: int = 32
    prompt_tokens: int = 96  # MUSE prompts are whole excerpts; the mini keeps the end of each
    continuation_tokens: int = 64  # MUSE: 128
    privleak_tokens: int = 128
    teach: TrainConfig = field(default_factory=lambda: TrainConfig(lr=5e-4, epochs=5, batch_size=8, max_length=256))
    teach_trainable: TrainableConfig = field(default_factory=lambda: TrainableConfig(mode="layers", layers="-10:"))
    eval_batch_size: int = 16
    source: str | None = None  # MUSE-News directory; None: ../shared/datasets/muse_news or $UNLEARN_MUSE_DIR

    def mini(self, tokenizer=None) -> MuseMini:
        """The setting's texts (token counts in the base model's tokenizer); the data is read and checked first."""
        data = load_muse(self.source)
        tokenizer = tokenizer or load_tokenizer(self.base_model)
        return mini_setting(data, tokenizer, self.verbmem_items, self.knowmem_items,
                            self.privleak_items, self.prompt_tokens, self.continuation_tokens, self.privleak_tokens)


def make_spec(overrides: list[str] | None = None, **fields) -> MuseBenchSpec:
    """A spec from keyword fields, then `a.b=c` overrides of any field (misspelt keys suggest the right one)."""
    return with_overrides(MuseBenchSpec, MuseBenchSpec(**fields), overrides, "bench spec")


def bench_dir(spec: MuseBenchSpec) -> Path:
    identity = {k: v for k, v in to_dict(spec).items() if k != "source"}
    identity["teach"] = teaching_identity(identity["teach"])
    return unlearn_home() / "bench" / "muse" / f"mini-{sha256_json({'v': BENCH_VERSION, 'spec': identity})[:12]}"


def fingerprint(mini: MuseMini) -> str:
    """What a retain evaluation must share with another: the evaluated texts and questions."""
    parts = [mini.verbmem, mini.knowmem_forget, mini.knowmem_retain, mini.privleak_forget, mini.privleak_holdout]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def text_min_k_scores(model, tokenizer, texts: list[str], batch_size: int = 16) -> list[float]:
    """Min-K% (k = 0.4) score of each text as a whole (`mia.min_k_scores`: lower = more likely a member)."""
    return text_scores(model, tokenizer, texts, min_k_scores, batch_size)


def evaluate_muse(model, tokenizer, mini: MuseMini, retain_eval: EvalResult | None = None, batch_size: int = 16,
                  progress: bool = True, base_model: str | None = None) -> EvalResult:
    """The MUSE summary (module docstring) of `model` on the mini setting; `retain_eval`, the retain model's
    evaluation on the same texts, gives PrivLeak (None: this is the retain model, PrivLeak 0 by definition)."""
    if retain_eval is not None:
        theirs = retain_eval.details.get("fingerprint")
        if retain_eval.schema != SCHEMA or theirs != fingerprint(mini):
            raise ConfigError("the retain evaluation was made on other MUSE texts or by another version; "
                              "prepare the setting again")
    bar = (lambda text: f"MUSE {text}") if progress else (lambda text: None)
    model.eval()
    results: dict[str, MetricResult] = {
        "verbmem_f": verbatim_memorization(model, tokenizer, [p for p, _ in mini.verbmem], [c for _, c in mini.verbmem],
                                           max_new_tokens=max(len(tokenizer(c, add_special_tokens=False)["input_ids"])
                                                              for _, c in mini.verbmem),
                                           batch_size=batch_size, progress=bar("VerbMem forget")),
        "knowmem_f": knowledge_memorization(model, tokenizer, [q for q, _ in mini.knowmem_forget],
                                            [a for _, a in mini.knowmem_forget], mini.forget_shots,
                                            batch_size=batch_size, progress=bar("KnowMem forget")),
        "knowmem_r": knowledge_memorization(model, tokenizer, [q for q, _ in mini.knowmem_retain],
                                            [a for _, a in mini.knowmem_retain], mini.retain_shots,
                                            batch_size=batch_size, progress=bar("KnowMem retain")),
        "mia_min_k": auc_result(text_min_k_scores(model, tokenizer, mini.privleak_forget, batch_size),
                                text_min_k_scores(model, tokenizer, mini.privleak_holdout, batch_size)),
    }
    auc = results["mia_min_k"].value
    results["privleak"] = privleak(auc, auc if retain_eval is None else retain_eval.summary["mia_min_k"])
    return EvalResult.from_metrics(SCHEMA, "muse", results, {k: KEYS[k][0] for k in results},
                                   {"fingerprint": fingerprint(mini), "base_model": base_model, "sizes": mini.sizes},
                                   {k: KEYS[k][1] for k in results})  # per use: the retain questions are utility


@dataclass
class Prepared:
    directory: Path
    mini: MuseMini
    target_dir: Path
    retain_dir: Path
    target_eval: EvalResult
    retain_eval: EvalResult
    info: dict


def _taught(directory: Path, spec: MuseBenchSpec, texts: list[str], role: str, progress: bool, timings: dict) -> Path:
    if (directory / "config.json").is_file():
        return directory
    model, tokenizer = load_model(spec.base_model)
    start = time.perf_counter()
    model, result = teach(model, tokenizer, [], spec.teach, spec.teach_trainable, texts=texts, progress=progress,
                          description=f"MUSE mini: teaching the {role} model")
    timings[f"teach_{role}_s"] = time.perf_counter() - start
    save_model(model, tokenizer, directory, f"# MUSE-News mini {role} model\n\n{spec.base_model} fine-tuned on "
               f"{len(texts)} MUSE-News texts ({result.steps} steps, {result.seconds:.0f} s).\n")
    return directory


def _evaluated_once(path: Path, model_dir: Path, spec: MuseBenchSpec, mini: MuseMini, role: str,
                    retain_eval: EvalResult | None, progress: bool, timings: dict) -> EvalResult:
    if path.is_file():
        return EvalResult.load(path)
    model, tokenizer = load_model(str(model_dir))
    start = time.perf_counter()
    result = evaluate_muse(model, tokenizer, mini, retain_eval, spec.eval_batch_size, progress, spec.base_model)
    timings[f"eval_{role}_s"] = time.perf_counter() - start
    result.details["role"] = role
    result.save(path)
    return result


def prepare(spec: MuseBenchSpec, progress: bool = True) -> Prepared:
    """Teach (once) and evaluate (once) the target and retain models of the mini setting."""
    mini = spec.mini()
    directory = bench_dir(spec)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    target_dir = _taught(directory / "target", spec, mini.forget_texts + mini.retain_texts, "target", progress, timings)
    retain_dir = _taught(directory / "retain", spec, mini.retain_texts, "retain", progress, timings)
    retain_eval = _evaluated_once(directory / "eval-retain.json", retain_dir, spec, mini, "retain", None, progress,
                                  timings)
    target_eval = _evaluated_once(directory / "eval-target.json", target_dir, spec, mini, "target", retain_eval,
                                  progress, timings)
    info_path = directory / "prepare.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {"timings": {}}
    if timings:
        info = {"spec": to_dict(spec), "sizes": mini.sizes,
                "timings": info["timings"] | timings | {"prepare_total_s": time.perf_counter() - start}}
        atomic_write_json(info_path, info)
    return Prepared(directory, mini, target_dir, retain_dir, target_eval, retain_eval, info)


def muse_request(mini: MuseMini) -> ForgetRequest:
    return ForgetRequest(id="muse-news-mini", target="MUSE-News forget texts", kind="copyright",
                         description=f"Forget {len(mini.forget_texts)} MUSE-News forget texts.",
                         forget=DataSpec(texts=list(mini.forget_texts)), retain=DataSpec(texts=list(mini.retain_texts)))


def bench_unlearn_config(method: str, overrides: list[str] | None = None) -> RunConfig:
    """`method` on MUSE: its `benchmark_settings['muse']`, else its TOFU settings (both are the published
    defaults with learning rates scaled for a 135M model), then the user's overrides."""
    return bench_run_config("muse", method, TrainConfig(lr=1e-5, epochs=10, batch_size=4, max_length=256,
                                                        warmup_steps=0), overrides, fallback="tofu")


def run_method(spec: MuseBenchSpec, method: str, overrides: list[str] | None = None, progress: bool = True,
               prepared: Prepared | None = None) -> dict:
    """Unlearn the forget texts from the prepared target with `method`; the result with its evaluation."""
    config = bench_unlearn_config(method, overrides)
    prepared = prepared or prepare(spec, progress)
    model, tokenizer = load_model(str(prepared.target_dir))
    start = time.perf_counter()
    result = Unlearner(model, tokenizer, config, make_method(config.method)).apply(muse_request(prepared.mini),
                                                                                   progress=progress)
    unlearn_s = time.perf_counter() - start
    start = time.perf_counter()
    evaluation = evaluate_muse(result.model, tokenizer, prepared.mini, prepared.retain_eval, spec.eval_batch_size,
                               progress, spec.base_model)
    return {"schema": RESULT_SCHEMA, "status": "ok", "setting": "mini", "method": result.method,
            "overrides": list(overrides or []), "config": to_dict(config), "spec": to_dict(spec),
            "summary": evaluation.summary, "evaluation": evaluation.to_json(),
            "training": {"steps": result.train.steps, "seconds": result.train.seconds},
            "timings": {"unlearn_s": unlearn_s, "eval_s": time.perf_counter() - start}}


def sweep(spec: MuseBenchSpec, methods: list[str], grid: list[str], out: Path, progress: bool = True,
          echo=print) -> dict:
    """Every method at every grid point, one result file each under `out/runs/` (reused when present); a run
    that fails (diverges, refuses the data) is recorded as failed and the others go on."""
    points = parse_grid(grid)
    check_grid(methods, points, bench_unlearn_config)
    prepared = prepare(spec, progress)

    def failed(method: str, overrides: list[str], error: str) -> dict:
        return {"schema": RESULT_SCHEMA, "status": "failed", "error": error, "method": {"name": method},
                "overrides": overrides}

    runs = sweep_runs(methods, points, out, lambda method, overrides: run_method(spec, method, overrides, progress,
                                                                                prepared),
                      failed, key=bench_dir(spec).name, echo=echo, tag="muse")
    result = {"schema": "unlearn.muse_sweep/1", "setting": "mini", "sizes": prepared.mini.sizes,
              "target": prepared.target_eval.summary, "retain": prepared.retain_eval.summary, "runs": runs}
    atomic_write_json(out / "muse.json", result)
    return result


def format_table(rows: list[tuple[str, dict | None]]) -> str:
    """One line per (label, summary); a None summary is a failed run."""
    return text_table(rows, TABLE_COLUMNS, 12)


def reference_rows(prepared: Prepared) -> list[tuple[str, dict]]:
    return [("target", prepared.target_eval.summary), ("retain (gold)", prepared.retain_eval.summary)]


def sweep_table(result: dict) -> str:
    rows = [("target", result["target"]), ("retain (gold)", result["retain"])]
    rows += [(r["label"], r.get("summary") if r.get("status") == "ok" else None) for r in result["runs"]]
    return format_table(rows)
