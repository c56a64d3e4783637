"""End-to-end runs shared by the Python API and the CLI: evaluate, unlearn, report, save."""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path

from .config import RunConfig, to_dict
from .data.request import ForgetRequest
from .errors import UnlearnError
from .io import atomic_directory, atomic_write_json, sha256_json
from .methods import make_method
from .metrics.probes import RequestEvaluation, evaluate_request
from .models.loading import load_model, model_fingerprint
from .processes import is_main_process
from .run_report import RunReport, TrainingSummary
from .unlearner import Unlearner, model_card, save_model

MANIFEST = "run.json"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def run_fingerprint(kind: str, request: ForgetRequest | None, config: dict) -> str:
    return sha256_json({"kind": kind, "request": request.content_hash() if request else None, "config": config})


def check_output_dir(out: Path, fingerprint: str, overwrite: bool) -> None:
    """Refuse an output directory that holds something else, unless `overwrite`."""
    if not out.exists() or overwrite:
        return
    if not out.is_dir():
        raise UnlearnError(f"--out {out} is a file; choose a directory")
    if not any(out.iterdir()):
        return
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            previous = json.loads(manifest.read_text()).get("fingerprint")
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous == fingerprint:
            return
        raise UnlearnError(f"{out} already holds a different run; choose another --out or pass --overwrite")
    raise UnlearnError(f"{out} is not empty and holds no unlearn run; choose another --out or pass --overwrite")


def evaluate(model, tokenizer, request: ForgetRequest, config: RunConfig | None = None,
             progress: str | None = "evaluating") -> RequestEvaluation:
    """Probe accuracy / ROUGE-L per group, answer log-probs, fluency and (with distractors) the likelihood test of
    `model` on `request`; `.to_json()` is the form a report keeps."""
    cfg = (config or RunConfig()).eval
    return evaluate_request(model, tokenizer, request, cfg.batch_size, cfg.max_new_tokens, progress=progress,
                            rouge_threshold=cfg.rouge_threshold, generation_batch_size=cfg.generation_batch_size)


def _headline(before: RequestEvaluation, after: RequestEvaluation) -> dict[str, dict[str, float]]:
    return {group: {"before": before.accuracy(group), "after": result.accuracy}
            for group, result in after.groups.items() if group in before.groups}


def run_request(
    request: ForgetRequest,
    config: RunConfig,
    out: str | Path | None = None,
    overwrite: bool = False,
    evaluate_before_after: bool = True,
    progress: bool = True,
) -> RunReport:
    """Load the model, unlearn `request`, evaluate before and after, and (if `out`) write the model and report.
    The report holds the unlearned model (`.unlearned_model`)."""
    method = make_method(config.method)  # validate before loading anything heavy
    fingerprint = run_fingerprint("run", request, to_dict(config))
    out_path = Path(out) if out else None
    if out_path:
        check_output_dir(out_path, fingerprint, overwrite)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    model, tokenizer = load_model(config.model.name, config.model.dtype)
    timings["load_s"] = time.perf_counter() - start
    evaluations: dict[str, RequestEvaluation] = {}
    main = is_main_process()  # several processes (accelerate launch) all train; the main one evaluates and writes
    evaluate_before_after = evaluate_before_after and main
    if evaluate_before_after:
        t = time.perf_counter()
        evaluations["original"] = evaluate(model, tokenizer, request, config,
                                           "evaluating (before)" if progress else None)
        timings["eval_before_s"] = time.perf_counter() - t
    fingerprint_model = model_fingerprint(model)
    result = Unlearner(model, tokenizer, config, method).apply(request, progress=progress)
    timings["unlearn_s"] = result.train.seconds
    if evaluate_before_after:
        t = time.perf_counter()
        evaluations["unlearned"] = evaluate(result.model, tokenizer, request, config,
                                            "evaluating (after)" if progress else None)
        timings["eval_after_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start
    report = RunReport(
        kind="run", created=now_iso(), title=f"Unlearning: {request.target}", request=request.summary(),
        method=result.method, model={"name": config.model.name, "fingerprint": fingerprint_model},
        config=to_dict(config), roles=[r for r in ("original", "unlearned") if r in evaluations],
        evaluations=evaluations, training=TrainingSummary.of(result.train), timings=timings,
        headline=_headline(evaluations["original"], evaluations["unlearned"]) if evaluate_before_after else None,
        unlearned_model=result.model)
    if out_path and main:
        write_run(out_path, report, tokenizer, request, config, fingerprint)
    return report


def write_run(out: Path, report: RunReport, tokenizer, request: ForgetRequest, config: RunConfig, fingerprint: str,
              card_metrics: dict | None = None) -> None:
    """Write model/ (the report's unlearned model), report.json, report.html and run.json into `out` in one atomic
    step. The model card records `card_metrics` (default: the report's before/after headline)."""
    from .report import write_reports

    with atomic_directory(out, overwrite=True) as tmp:
        report.output_model = str(out / "model")
        card_metrics = card_metrics if card_metrics is not None else report.headline
        save_model(report.unlearned_model, tokenizer, tmp / "model",
                   model_card(request, report.method, config, card_metrics))
        write_reports(report.to_json(), tmp)
        atomic_write_json(tmp / "request.json", request.to_dict())  # what was forgotten: `unlearn audit --request`
        atomic_write_json(tmp / MANIFEST, {"fingerprint": fingerprint, "kind": report.kind, "created": report.created,
                                           "request": request.summary()})
