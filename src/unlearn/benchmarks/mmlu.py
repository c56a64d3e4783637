"""MMLU (Hendrycks et al. 2021): loading the published CSV files and multiple-choice accuracy.

Files: `<dir>/<split>/<subject>_<split>.csv` (split = dev | val | test), header-less rows of
question, A, B, C, D, answer letter — the layout of the original release and of
`../shared/datasets/mmlu`. Few-shot prompts take the first k rows of the subject's dev split, as the
reference evaluation does.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import ConfigError
from ..metrics.base import MetricResult
from ..metrics.mcq import LETTERS, MCQuestion, mcq_accuracy, mmlu_prompt, option_logprobs
from ..registry import did_you_mean

SPLITS = ("dev", "val", "test")
ENV_DIR = "UNLEARN_MMLU_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[3]


def default_source() -> Path:
    """$UNLEARN_MMLU_DIR if set, else the repository's ../shared/datasets/mmlu."""
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else _REPO_ROOT.parent / "shared" / "datasets" / "mmlu"


def _directory(source: str | os.PathLike | None) -> Path:
    path = Path(source) if source is not None else default_source()
    if not path.is_dir():
        raise ConfigError(f"MMLU directory not found: {path}; pass the directory holding dev/ val/ test/ "
                          f"(or set {ENV_DIR})")
    return path


def subjects(source: str | os.PathLike | None = None, split: str = "test") -> list[str]:
    """The subjects that have a file for `split`."""
    folder = _directory(source) / split
    return sorted(p.name[: -len(f"_{split}.csv")] for p in folder.glob(f"*_{split}.csv"))


def load_subject(subject: str, split: str = "test", source: str | os.PathLike | None = None) -> list[MCQuestion]:
    """The questions of one subject and split, checked row by row."""
    if split not in SPLITS:
        raise ConfigError(f"MMLU split '{split}' is unknown; use one of {', '.join(SPLITS)}")
    path = _directory(source) / split / f"{subject}_{split}.csv"
    if not path.is_file():
        known = subjects(source, split)
        raise ConfigError(f"MMLU subject '{subject}' has no {split} file ({path}).{did_you_mean(subject, known)}")
    questions = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if len(row) != 6:
                raise ConfigError(f"{path}:{number}: expected 6 fields (question, A, B, C, D, answer), got {len(row)}")
            if row[5] not in LETTERS:
                raise ConfigError(f"{path}:{number}: answer must be one of {', '.join(LETTERS)}, got {row[5]!r}")
            questions.append(MCQuestion(row[0], tuple(row[1:5]), LETTERS.index(row[5])))
    if not questions:
        raise ConfigError(f"{path} is empty")
    return questions


def evaluate_subject(model, tokenizer, subject: str, shots: int = 0, split: str = "test", limit: int = 0,
                     source: str | os.PathLike | None = None, batch_size: int = 8) -> MetricResult:
    """Accuracy on one subject, zero-shot or with the first `shots` dev questions as examples."""
    questions = load_subject(subject, split, source)[: limit or None]
    examples = load_subject(subject, "dev", source)[:shots] if shots else []
    if len(examples) < shots:
        raise ConfigError(f"MMLU subject '{subject}' has only {len(examples)} dev questions for {shots} shots")
    prompts = [mmlu_prompt(q, subject, examples) for q in questions]
    scores = option_logprobs(model, tokenizer, prompts, [len(q.choices) for q in questions], batch_size)
    return mcq_accuracy(scores, [q.answer for q in questions])
