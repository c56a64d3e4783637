"""`unlearn bench wmdp`: hazardous-knowledge removal measured as WMDP does it (Li et al. 2024, "The WMDP
Benchmark: Measuring and Reducing Malicious Use With Unlearning", arXiv 2403.03218).

A model is unlearned on a forget corpus of texts (WMDP's own is the bio forget corpus of papers; any JSONL of
{"text": ...} lines in that layout works) and judged by multiple-choice accuracy: WMDP-bio (lower is better, 0.25
is chance with four options) and MMLU (utility: higher is better), overall and on the subjects next to biology
that the WMDP paper reports (college biology, virology) and two that are not (college computer science,
computer security). Both are asked zero-shot in the MMLU prompt (`metrics.mcq`), so the numbers equal the
lm-evaluation-harness's `acc` on the same rows (`unlearn eval --lm-eval wmdp_bio_local`).

- eval: the table of one model (cached per model weights and setting);
- run: evaluate the model, unlearn the forget corpus with one method (the retain corpus, when given, as retain
  data; else the built-in general replay set), evaluate again, print chance, before and after.

WMDP-bio questions: `wmdp_bio_200.jsonl` of `../shared/datasets/wmdp` ($UNLEARN_WMDP_DIR, or --wmdp FILE),
one {"question", "choices", "answer"} per line, answer the index of the right choice.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig, TrainConfig, to_dict, with_overrides
from ..data.request import DataSpec, ForgetRequest
from ..errors import ConfigError
from ..io import sha256_json, unlearn_home
from ..methods import make_method
from ..metrics.base import MetricResult, mean_result
from ..metrics.mcq import MCQuestion, mcq_accuracy, mmlu_prompt, option_logprobs
from ..metrics.result import EvalResult
from ..models.loading import load_model, weights_digest
from ..report.bench import text_table
from ..unlearner import Unlearner, save_model
from .mmlu import load_subject
from .sweeping import bench_run_config

WMDP_ENV = "UNLEARN_WMDP_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA = "unlearn.wmdp_eval/1"
RESULT_SCHEMA = "unlearn.wmdp_run/1"
CHANCE = 0.25  # four options
# The MMLU subjects the WMDP paper reports beside the overall score (its Fig. 1 / Table 1)
DEFAULT_SUBJECTS = ["college_biology", "virology", "college_computer_science", "computer_security"]


def wmdp_file(path: str | os.PathLike | None = None) -> Path:
    """The WMDP-bio question file: `path` (a file, or a directory holding wmdp_bio_200.jsonl), else
    $UNLEARN_WMDP_DIR or ../shared/datasets/wmdp."""
    where = Path(path or os.environ.get(WMDP_ENV) or _REPO_ROOT.parent / "shared" / "datasets" / "wmdp").expanduser()
    found = where / "wmdp_bio_200.jsonl" if where.is_dir() else where
    if not found.is_file():
        raise ConfigError(f"WMDP-bio data not found: {found}; pass --wmdp FILE.jsonl or set {WMDP_ENV} to a "
                          "directory holding wmdp_bio_200.jsonl")
    return found


def _jsonl(path: Path, what: str) -> list[tuple[str, dict]]:
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path}:{number}: each line must be a JSON object")
        rows.append((f"{path}:{number}", record))
    if not rows:
        raise ConfigError(f"{path} holds no {what}")
    return rows


def load_wmdp(path: str | os.PathLike | None = None) -> list[MCQuestion]:
    """WMDP questions from JSONL ({"question", "choices": [...], "answer": index}), checked line by line."""
    questions = []
    for where, record in _jsonl(wmdp_file(path), "WMDP questions"):
        question, choices, answer = record.get("question"), record.get("choices"), record.get("answer")
        if not isinstance(question, str) or not isinstance(choices, list) or len(choices) < 2 \
                or not all(isinstance(c, str) for c in choices):
            raise ConfigError(f"{where}: needs 'question' (text) and 'choices' (a list of at least two texts)")
        if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
            raise ConfigError(f"{where}: 'answer' must be the index of a choice (0..{len(choices) - 1}), got {answer!r}")
        questions.append(MCQuestion(question, tuple(choices), answer))
    return questions


def load_corpus(path: str | os.PathLike, max_texts: int = 0) -> list[str]:
    """Texts of a corpus in WMDP's layout: JSONL with a "text" field per line (other fields are ignored);
    `max_texts` > 0 keeps the first ones."""
    texts = []
    for where, record in _jsonl(Path(path), "corpus texts"):
        text = record.get("text")
        if not isinstance(text, str):
            raise ConfigError(f"{where}: needs a 'text' field holding the text")
        if text.strip():
            texts.append(text)
    if not texts:
        raise ConfigError(f"{path} holds only blank texts")
    return texts[:max_texts] if max_texts > 0 else texts


@dataclass
class WmdpBenchSpec:
    """The questions asked and how; the forget/retain corpora of a run are given to `run_method`."""

    wmdp: str | None = None  # question file or directory (see `wmdp_file`)
    wmdp_limit: int = 0  # the first N questions (0: all)
    mmlu_subjects: list[str] = field(default_factory=lambda: list(DEFAULT_SUBJECTS))
    mmlu_limit: int = 0  # the first N questions of each subject's test split (0: all)
    mmlu_source: str | None = None  # MMLU directory (default ../shared/datasets/mmlu or $UNLEARN_MMLU_DIR)
    batch_size: int = 8


def make_spec(overrides: list[str] | None = None, **fields) -> WmdpBenchSpec:
    return with_overrides(WmdpBenchSpec, WmdpBenchSpec(**fields), overrides, "bench spec")


def _accuracy(model, tokenizer, questions: list[MCQuestion], subject: str, batch_size: int) -> MetricResult:
    prompts = [mmlu_prompt(q, subject) for q in questions]
    return mcq_accuracy(option_logprobs(model, tokenizer, prompts, [len(q.choices) for q in questions], batch_size),
                        [q.answer for q in questions])


def checked_questions(spec: WmdpBenchSpec) -> dict[str, list[MCQuestion]]:
    """Every question set of the spec, loaded and checked (before any model loads)."""
    if not spec.mmlu_subjects:
        raise ConfigError("mmlu_subjects is empty; name at least one MMLU subject (utility)")
    sets = {"wmdp_bio": load_wmdp(spec.wmdp)[: spec.wmdp_limit or None]}
    for subject in spec.mmlu_subjects:
        sets[f"mmlu_{subject}"] = load_subject(subject, "test", spec.mmlu_source)[: spec.mmlu_limit or None]
    return sets


def evaluate_wmdp(model, tokenizer, spec: WmdpBenchSpec, progress: bool = True) -> EvalResult:
    """WMDP-bio accuracy, each MMLU subject's, and `mmlu` over all their questions (each question counts once)."""
    from tqdm.auto import tqdm

    sets = checked_questions(spec)
    results: dict[str, MetricResult] = {}
    for key, questions in tqdm(sets.items(), desc="WMDP / MMLU", disable=not progress, leave=False):
        subject = "biology" if key == "wmdp_bio" else key.removeprefix("mmlu_")
        results[key] = _accuracy(model, tokenizer, questions, subject, spec.batch_size)
    results["mmlu"] = mean_result([v for k, r in results.items() if k.startswith("mmlu_") for v in r.per_example])
    return EvalResult.from_metrics(SCHEMA, "wmdp", results, {k: "mcq_accuracy" for k in results},
                                   {"sizes": {k: len(v) for k, v in sets.items()}, "chance": CHANCE})


def evaluated_once(model, tokenizer, spec: WmdpBenchSpec, progress: bool = True) -> EvalResult:
    """`evaluate_wmdp` of a model, cached by its weights and the spec under $UNLEARN_HOME/bench/wmdp/."""
    key = sha256_json({"weights": weights_digest(model, sample=None), "spec": to_dict(spec)})[:16]
    path = unlearn_home() / "bench" / "wmdp" / f"eval-{key}.json"
    if path.is_file():
        return EvalResult.load(path)
    result = evaluate_wmdp(model, tokenizer, spec, progress)
    result.save(path)
    return result


def bench_unlearn_config(method: str, overrides: list[str] | None = None) -> RunConfig:
    """`method` on WMDP: its `benchmark_settings['wmdp']` (else its own defaults: RMU's are WMDP's), one pass over
    the forget corpus in batches of 4 texts of at most 512 tokens, the last 10 layers trainable, then the user's
    overrides."""
    return bench_run_config("wmdp", method, TrainConfig(epochs=1, batch_size=4, max_length=512), overrides)


def run_method(spec: WmdpBenchSpec, base_model: str, method: str, forget: list[str], retain: list[str] | None = None,
               overrides: list[str] | None = None, progress: bool = True, save_model_to: Path | None = None) -> dict:
    """Evaluate `base_model`, unlearn `forget` (texts) with `method`, evaluate again; the result as a dict."""
    config = bench_unlearn_config(method, overrides)
    checked_questions(spec)
    model, tokenizer = load_model(base_model)
    before = evaluated_once(model, tokenizer, spec, progress)
    request = ForgetRequest(id="wmdp-forget-corpus", target="the forget corpus", kind="harmful",
                            description=f"Forget {len(forget)} texts of a hazardous-knowledge corpus.",
                            forget=DataSpec(texts=list(forget)), retain=DataSpec(texts=list(retain or [])))
    start = time.perf_counter()
    result = Unlearner(model, tokenizer, config, make_method(config.method)).apply(request, progress=progress)
    unlearn_s = time.perf_counter() - start
    start = time.perf_counter()
    after = evaluate_wmdp(result.model, tokenizer, spec, progress)
    if save_model_to is not None:
        save_model(result.model, tokenizer, save_model_to, f"# {base_model} unlearned on a WMDP forget corpus with {method}\n")
    return {"schema": RESULT_SCHEMA, "status": "ok", "base_model": base_model, "method": result.method,
            "overrides": list(overrides or []), "config": to_dict(config), "spec": to_dict(spec),
            "corpus": {"forget_texts": len(forget), "retain_texts": len(retain or [])},
            "before": before.summary, "summary": after.summary, "evaluation": after.to_json(),
            "training": {"steps": result.train.steps, "seconds": result.train.seconds},
            "timings": {"unlearn_s": unlearn_s, "eval_s": time.perf_counter() - start}}


def format_table(rows: list[tuple[str, dict]], subjects: list[str]) -> str:
    columns = [("wmdp_bio", "WMDP-bio"), ("mmlu", "MMLU")] + [(f"mmlu_{s}", s[:18]) for s in subjects]
    return text_table(rows, columns, 20)


def chance_row(subjects: list[str]) -> tuple[str, dict]:
    return "chance", {k: CHANCE for k in ["wmdp_bio", "mmlu"] + [f"mmlu_{s}" for s in subjects]}
