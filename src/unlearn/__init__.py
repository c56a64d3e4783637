"""unlearn: make language models forget, and prove how well they forgot.

Public API (heavy modules are imported on first use, so `import unlearn` stays light):
    load_model(name)            -> (model, tokenizer)   'default' is the embedded SmolLM2-135M-Instruct
    load_request(path)          -> ForgetRequest         from YAML / JSON / JSONL
    unlearn(request, ...)       -> RunReport             unlearn a request, evaluate, optionally save
                                                         (`.unlearned_model`, `.to_json()`, `unlearn.run_report.read_report`)
    evaluate(model, tok, req)   -> RequestEvaluation     probe accuracy, ROUGE-L, log-probs, fluency, likelihood
                                                         test (`.to_json()` / `RequestEvaluation.from_json`)
    audit(model, tok, req, ...) -> AuditReport           the probes under every attack, recovery, worst case
                                                         (`.to_json()` / `unlearn.auditing.read_audit(path)`)
    guard(model, tok, req, guards) -> GuardedModel       inference-time guards in front of the model
    apply(requests, state, ...) -> [Outcome]             requests in order into a state directory (ledger,
                                                         verification, rollback); see docs/requests.md
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["ForgetRequest", "RunConfig", "Unlearner", "apply", "audit", "evaluate", "guard", "load_model",
           "load_request", "unlearn"]


def load_model(name: str = "default", dtype: str = "float32"):
    from .models.loading import load_model as _load

    return _load(name, dtype)


def load_request(path):
    from .data.request import load_request as _load

    return _load(path)


def evaluate(model, tokenizer, request, config=None):
    from .runner import evaluate as _evaluate

    return _evaluate(model, tokenizer, request, config)


def audit(model, tokenizer, request, original=None, retain=None, config=None, progress: bool = True,
          **kwargs):
    """Attack `model` (the unlearned one) on `request` and report recovery per attack and the worst case, as an
    `unlearn.auditing.AuditReport` (`.to_json()` is report.json); `original` / `retain` are models; `config` an
    `unlearn.auditing.AuditConfig`. Write it with `unlearn.auditing.write_audit(report, out)`, read one back with
    `unlearn.auditing.read_audit(path)`."""
    from .auditing import audit as _audit

    return _audit(model, tokenizer, request, original=original, retain=retain, config=config, progress=progress,
                  **kwargs)


def guard(model, tokenizer, requests=(), guards=("refusal_filter",)):
    """`model` behind inference-time guards (names or {'name': ..., setting: value}) guarding `requests` (a
    ForgetRequest, a path, or a list of them); it stands in for the model in `evaluate`, `audit` and
    generation, and takes more requests with `.add_request(request)`."""
    from .data.request import ForgetRequest as _FR
    from .data.request import load_request as _load
    from .guards import guarded_model

    if isinstance(requests, (_FR, str)) or hasattr(requests, "read_text"):
        requests = [requests]
    loaded = [r if isinstance(r, _FR) else _load(r) for r in requests]
    return guarded_model(model, tokenizer, list(guards), loaded)


def apply(requests, state, model: str | None = None, method: str | dict | None = None,
          overrides: list[str] | None = None, technique: str | None = None, retry: bool = False,
          progress: bool = True) -> list:
    """Apply `requests` (ForgetRequests or paths), in order, to the state directory `state` (created on first
    use from `model`, default the embedded one); returns one `Outcome` (id, status, message) per request.
    `technique` ('sequential', 'lora', 'task_vector') is fixed when the state directory is created."""
    from .config import RunConfig, to_dict, with_overrides
    from .data.request import ForgetRequest as _FR
    from .data.request import load_request as _load
    from .requests import apply_requests
    from .requests.apply import explicit_sequence

    if isinstance(requests, (_FR, str)) or hasattr(requests, "read_text"):
        requests = [requests]
    loaded = [r if isinstance(r, _FR) else _load(r) for r in requests]
    data = to_dict(RunConfig())
    if method:
        data["method"] = {"name": method} if isinstance(method, str) else dict(method)
    overrides = [*([f"sequence.technique={technique}"] if technique else []), *(overrides or [])]
    cfg = with_overrides(RunConfig, data, overrides)
    return apply_requests(loaded, state, model, cfg, explicit_sequence(cfg, overrides), retry=retry,
                          progress=progress)


def unlearn(request, method: str | dict = "npo", model: str = "default", out=None, overrides: list[str] | None = None,
            config=None, overwrite: bool = False, progress: bool = True):
    """Unlearn `request` (a ForgetRequest or a path) from `model` with `method`; returns the report (a
    `unlearn.run_report.RunReport`: `.headline`, `.evaluations`, `.to_json()`).

    `report.unlearned_model` is the unlearned model; with `out`, the model and reports are written there.
    """
    from .config import RunConfig, to_dict, with_overrides
    from .data.request import ForgetRequest as _FR
    from .data.request import load_request as _load
    from .runner import run_request

    if not isinstance(request, _FR):
        request = _load(request)
    data = to_dict(config or RunConfig())
    data["method"] = {"name": method} if isinstance(method, str) else dict(method)
    data["model"]["name"] = model
    cfg = with_overrides(RunConfig, data, overrides)
    return run_request(request, cfg, out, overwrite=overwrite, progress=progress)


def __getattr__(name: str):
    if name == "ForgetRequest":
        from .data.request import ForgetRequest

        return ForgetRequest
    if name == "RunConfig":
        from .config import RunConfig

        return RunConfig
    if name == "Unlearner":
        from .unlearner import Unlearner

        return Unlearner
    raise AttributeError(name)
