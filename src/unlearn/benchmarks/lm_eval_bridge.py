"""lm-evaluation-harness on our models, offline: `unlearn eval MODEL --lm-eval TASKS`.

The harness's own tasks download their data from the hub, which an offline machine cannot do. Next to them this
module defines local tasks over the data in `../shared/datasets` (or any directory in the same layout), written as
harness task configurations, so its results sit beside ours in the same run:

    wmdp_bio_local           WMDP-bio multiple choice (question, choices, answer index; JSONL)
    mmlu_<subject>_local     an MMLU subject's test split (the published header-less CSV)

Both use the MMLU prompt of `metrics.mcq` ("{question}\\nA. ...\\nD. ...\\nAnswer:", continuations " A".." D"),
so the harness's `acc` equals our `mcq_accuracy` on the same questions. Any other name is passed to the harness
as a task of its own (it then needs its data: online, or in the harness's cache).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ConfigError, UnlearnError
from ..io import atomic_write_text, unlearn_home
from ..metrics.mcq import LETTERS
from .wmdp import wmdp_file

LOCAL_SUFFIX = "_local"
MCQ_TEXT = "{{question}}\n" + "\n".join(f"{letter}. {{{{choices[{i}]}}}}" for i, letter in enumerate(LETTERS)) \
    + "\nAnswer:"


def mmlu_file(subject: str) -> Path:
    """The subject's test split as JSONL (question, choices, answer) for the harness, in the cache under a name
    that carries the content's hash (another MMLU directory never reads a stale copy)."""
    from .mmlu import load_subject

    text = "".join(json.dumps({"question": q.question, "choices": list(q.choices), "answer": q.answer}) + "\n"
                   for q in load_subject(subject, "test"))
    out = unlearn_home() / "lm_eval" / f"mmlu_{subject}_test-{hashlib.sha256(text.encode()).hexdigest()[:12]}.jsonl"
    if not out.is_file():
        atomic_write_text(out, text)
    return out


def mcq_task(name: str, data_file: Path) -> dict:
    """A harness task configuration: multiple choice over a local JSONL file, in the MMLU prompt format."""
    return {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data_file)}},
            "test_split": "test", "output_type": "multiple_choice", "doc_to_text": MCQ_TEXT,
            "doc_to_choice": list(LETTERS), "doc_to_target": "answer",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}


def task_spec(name: str) -> dict | str:
    """Our local task's configuration for `name`, or the name itself for one of the harness's tasks."""
    if name == "wmdp_bio_local":
        return mcq_task(name, wmdp_file())
    if name.startswith("mmlu_") and name.endswith(LOCAL_SUFFIX):
        return mcq_task(name, mmlu_file(name[len("mmlu_"):-len(LOCAL_SUFFIX)]))
    return name


def run_lm_eval(model, tokenizer, tasks: list[str], batch_size: int = 16, limit: int | None = None) -> dict:
    """{task: {metric: value}} from lm-evaluation-harness run on `model` (already loaded; nothing is reloaded)."""
    if not tasks:
        raise ConfigError("--lm-eval needs at least one task name (e.g. wmdp_bio_local, mmlu_anatomy_local)")
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise UnlearnError("--lm-eval needs lm-evaluation-harness: pip install lm_eval") from None
    specs = [task_spec(t) for t in tasks]
    wrapped = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
    try:
        out = lm_eval.simple_evaluate(model=wrapped, tasks=specs, limit=limit, log_samples=False,
                                      bootstrap_iters=0)
    except Exception as exc:  # the harness reports unknown tasks and download failures its own ways
        raise UnlearnError(f"lm-evaluation-harness failed on {', '.join(tasks)}: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    results = {}
    for task, values in (out or {}).get("results", {}).items():
        metrics = {k.split(",")[0]: v for k, v in values.items()
                   if isinstance(v, (int, float)) and "stderr" not in k and k != "sample_len"}
        results[task] = metrics | ({"n": values["sample_len"]} if "sample_len" in values else {})
    return results
