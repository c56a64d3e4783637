"""MUSE-News data (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for Language Models") from a
local directory in the published layout, and the mini setting that a CPU can teach and unlearn.

Published layout (the files of `../shared/datasets/muse_news`, each a JSON list):

    raw/forget.json                    forget corpus: article texts
    verbmem/forget.json                {"prompt", "gt"}: a forget excerpt and its true continuation
    knowmem/forget_qa.json, _icl       {"question", "answer"} about the forget corpus (+ few-shot examples)
    knowmem/retain2_qa.json, _icl      the same about the retain corpus (utility)
    privleak/forget.json, retain2.json, holdout.json   texts; holdout was never trained on

The published protocol unlearns MUSE's own target model (Llama-2-7B fine-tuned on the forget and retain
corpora). Offline, the mini setting teaches a small base model instead, on the texts its metrics ask about:

- forget corpus: the first `verbmem_items` VerbMem excerpts (the last `prompt_tokens` tokens of the prompt
  followed by the first `continuation_tokens` of the true continuation), the source passage of the first
  `knowmem_items` forget questions found in raw/forget.json (the text around an occurrence of the answer that
  shares at least half of the question's words: `answer_passage`), and the first `privleak_items` PrivLeak forget texts cut to `privleak_tokens` tokens;
- retain corpus: the first `privleak_items` PrivLeak retain2 texts (cut the same way) and the source passages
  of the first `knowmem_items` retain questions found in them (the raw retain corpus is not published with
  the data, so only those questions can be taught and asked);
- holdout: the first `privleak_items` PrivLeak holdout texts, cut the same way and never taught.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

ENV_DIR = "UNLEARN_MUSE_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[3]
TEXT_FILES = {"raw_forget": "raw/forget.json", "privleak_forget": "privleak/forget.json",
              "privleak_retain": "privleak/retain2.json", "privleak_holdout": "privleak/holdout.json"}
RECORD_FILES = {  # name: (file, fields of each record)
    "verbmem": ("verbmem/forget.json", ("prompt", "gt")),
    "knowmem_forget": ("knowmem/forget_qa.json", ("question", "answer")),
    "knowmem_forget_icl": ("knowmem/forget_qa_icl.json", ("question", "answer")),
    "knowmem_retain": ("knowmem/retain2_qa.json", ("question", "answer")),
    "knowmem_retain_icl": ("knowmem/retain2_qa_icl.json", ("question", "answer")),
}


@dataclass
class MuseData:
    """Every published file the mini setting reads, checked."""

    raw_forget: list[str]
    verbmem: list[tuple[str, str]]  # (prompt, true continuation)
    knowmem_forget: list[tuple[str, str]]  # (question, answer)
    knowmem_forget_icl: list[tuple[str, str]]
    knowmem_retain: list[tuple[str, str]]
    knowmem_retain_icl: list[tuple[str, str]]
    privleak_forget: list[str]
    privleak_retain: list[str]
    privleak_holdout: list[str]


def default_source() -> Path:
    """$UNLEARN_MUSE_DIR if set, else the repository's ../shared/datasets/muse_news."""
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else _REPO_ROOT.parent / "shared" / "datasets" / "muse_news"


def _read_list(directory: Path, relative: str) -> list[Any]:
    path = directory / relative
    if not path.is_file():
        raise ConfigError(f"MUSE file {relative} not found in {directory}; pass a directory in the published "
                          f"MUSE-News layout (raw/, verbmem/, knowmem/, privleak/) or set {ENV_DIR}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); restore the published file") from None
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path} must be a non-empty JSON list")
    return data


def _texts(directory: Path, relative: str) -> list[str]:
    """The texts of a file, blank ones left out (the published raw corpus has one)."""
    data = _read_list(directory, relative)
    for i, text in enumerate(data):
        if not isinstance(text, str):
            raise ConfigError(f"{directory / relative}: item {i} is not a text")
    texts = [text for text in data if text.strip()]
    if not texts:
        raise ConfigError(f"{directory / relative} holds only blank texts")
    return texts


def _records(directory: Path, relative: str, fields: tuple[str, str]) -> list[tuple[str, str]]:
    rows = []
    for i, record in enumerate(_read_list(directory, relative)):
        values = tuple(record.get(name) for name in fields) if isinstance(record, dict) else (None, None)
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise ConfigError(f"{directory / relative}: item {i} needs non-empty text fields "
                              f"{fields[0]!r} and {fields[1]!r}")
        rows.append(values)
    return rows


def load_muse(source: str | os.PathLike | None = None) -> MuseData:
    """Read and check the published files from `source` (default: `default_source()`)."""
    directory = Path(source) if source is not None else default_source()
    if not directory.is_dir():
        raise ConfigError(f"MUSE directory not found: {directory}; pass the directory holding raw/ verbmem/ "
                          f"knowmem/ privleak/ (e.g. ../shared/datasets/muse_news) or set {ENV_DIR}")
    texts = {name: _texts(directory, relative) for name, relative in TEXT_FILES.items()}
    records = {name: _records(directory, relative, fields) for name, (relative, fields) in RECORD_FILES.items()}
    return MuseData(**texts, **records)


def _window(text: str, at: int, length: int, before_chars: int, after_chars: int) -> str:
    """From a paragraph start at most `before_chars` before `at` (or exactly that far when no paragraph starts
    there) to the end of the paragraph within `after_chars` after the answer."""
    low = max(0, at - before_chars)
    paragraph = text.find("\n\n", low, at) if low > 0 else -1
    start = paragraph + 2 if paragraph >= 0 else low
    end_of_answer = at + length
    high = min(len(text), end_of_answer + after_chars)
    paragraph_end = text.rfind("\n\n", end_of_answer, high)
    return text[start : paragraph_end if paragraph_end >= 0 else high].strip()


QUESTION_WORDS = frozenset("what which when where whom whose does according that this with from have were they their "
                           "there into about".split())


def _content_words(text: str) -> set[str]:
    """Lower-cased words of four characters or more, question words left out."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3} - QUESTION_WORDS


def answer_passage(texts: list[str], answer: str, question: str = "", min_overlap: float = 0.5,
                   before_chars: int = 600, after_chars: int = 300) -> str | None:
    """The source passage of a QA pair: the window (`_window`) around an occurrence of `answer` in `texts` that
    shares the most words of four letters or more with `question` (the first such on ties), so that a short
    answer such as '10%' is taken from the article the question is about. None when no window holds at least
    `min_overlap` of the question's words (the question is about a text that is not there)."""
    words = _content_words(question)
    best, best_overlap = None, -1
    for text in texts:
        at = text.find(answer)
        while at >= 0:
            window = _window(text, at, len(answer), before_chars, after_chars)
            overlap = len(words & _content_words(window))
            if overlap > best_overlap:
                best, best_overlap = window, overlap
            at = text.find(answer, at + 1)
    return best if best_overlap >= min_overlap * len(words) else None


def _first_tokens(tokenizer, text: str, n: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[:n])


def _last_tokens(tokenizer, text: str, n: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[-n:])


def _answerable(questions: list[tuple[str, str]], corpus: list[str], n: int) -> tuple[list[tuple[str, str]], list[str]]:
    """The first `n` questions whose answer occurs in `corpus`, and their source passages (without repeats)."""
    kept, passages = [], []
    for question, answer in questions:
        if len(kept) == n:
            break
        passage = answer_passage(corpus, answer, question)
        if passage is not None:
            kept.append((question, answer))
            passages.append(passage)
    return kept, list(dict.fromkeys(passages))


@dataclass
class MuseMini:
    """What the mini setting teaches, unlearns and asks."""

    forget_texts: list[str]
    retain_texts: list[str]
    verbmem: list[tuple[str, str]]  # (prompt, true continuation)
    knowmem_forget: list[tuple[str, str]]
    knowmem_retain: list[tuple[str, str]]
    forget_shots: list[tuple[str, str]]
    retain_shots: list[tuple[str, str]]
    privleak_forget: list[str]
    privleak_holdout: list[str]
    sizes: dict[str, int] = field(default_factory=dict)


def _check_count(name: str, wanted: int, available: int) -> None:
    if wanted < 1:
        raise ConfigError(f"{name} must be at least 1, got {wanted}")
    if wanted > available:
        raise ConfigError(f"{name} = {wanted} but the data has only {available}; use at most {available}")


def mini_setting(data: MuseData, tokenizer, verbmem_items: int = 8, knowmem_items: int = 12,
                 privleak_items: int = 32, prompt_tokens: int = 96, continuation_tokens: int = 64,
                 privleak_tokens: int = 128) -> MuseMini:
    """The mini setting's corpora and evaluation sets (see the module docstring); token counts are the base
    model's."""
    _check_count("verbmem_items", verbmem_items, len(data.verbmem))
    _check_count("privleak_items", privleak_items,
                 min(len(data.privleak_forget), len(data.privleak_retain), len(data.privleak_holdout)))
    for name, value in (("prompt_tokens", prompt_tokens), ("continuation_tokens", continuation_tokens),
                        ("privleak_tokens", privleak_tokens)):
        _check_count(name, value, 1 << 30)
    _check_count("knowmem_items", knowmem_items, min(len(data.knowmem_forget), len(data.knowmem_retain)))
    forget_questions, forget_passages = _answerable(data.knowmem_forget, data.raw_forget, knowmem_items)
    retain_questions, retain_passages = _answerable(data.knowmem_retain, data.privleak_retain, knowmem_items)
    found = min(len(forget_questions), len(retain_questions))
    if found < knowmem_items:
        raise ConfigError(f"knowmem_items = {knowmem_items} but only {len(forget_questions)} forget and "
                          f"{len(retain_questions)} retain questions have their answer in the corpus; use at most {found}")
    verbmem = [(_last_tokens(tokenizer, prompt, prompt_tokens), _first_tokens(tokenizer, gt, continuation_tokens))
               for prompt, gt in data.verbmem[:verbmem_items]]
    cut = [[_first_tokens(tokenizer, t, privleak_tokens) for t in texts[:privleak_items]]
           for texts in (data.privleak_forget, data.privleak_retain, data.privleak_holdout)]
    privleak_forget, privleak_retain, privleak_holdout = cut
    forget_texts = [prompt + continuation for prompt, continuation in verbmem] + forget_passages + privleak_forget
    retain_texts = privleak_retain + retain_passages
    sizes = {"verbmem": len(verbmem), "knowmem_forget": len(forget_questions), "knowmem_retain": len(retain_questions),
             "privleak_forget": len(privleak_forget), "privleak_holdout": len(privleak_holdout),
             "forget_texts": len(forget_texts), "retain_texts": len(retain_texts),
             "forget_tokens": sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in forget_texts),
             "retain_tokens": sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in retain_texts)}
    return MuseMini(forget_texts, retain_texts, verbmem, forget_questions, retain_questions,
                    list(data.knowmem_forget_icl), list(data.knowmem_retain_icl), privleak_forget, privleak_holdout,
                    sizes)
