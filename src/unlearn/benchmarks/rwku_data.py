"""RWKU data (Jin et al. 2024, "RWKU: Benchmarking Real-World Knowledge Unlearning for Large Language Models",
arXiv 2406.10890) from a local directory in the published, processed layout: one folder per unlearning target,
numbered in the benchmark's order, each file a JSON list.

    Target/1_Stephen_King/intro.json            [{"target", "intro"}]: the target's name (and a short introduction)
    Target/1_Stephen_King/forget_level1.json    [{"query", "answer", "level", "type", "subject"}]: fill-in-the-blank
    Target/1_Stephen_King/forget_level2.json    the same: question-answer probes
    Target/1_Stephen_King/forget_level3.json    the same: adversarial-attack probes; `type` names the attack
    Target/1_Stephen_King/neighbor_level1.json  the same (+ "neighbor"): fill-in-the-blank about neighbours
    Target/1_Stephen_King/neighbor_level2.json  the same: question-answer about neighbours
    Target/1_Stephen_King/forget_mia.json       [{"text", "subject"}]: texts about the target (forget members)
    Target/1_Stephen_King/retain_mia.json       [{"text", "subject"}]: texts about other subjects (retain members)
    Target/1_Stephen_King/retain_mmlu.json      [{"task", "question", "choices", "answer", "examples"}]: MMLU, 5-shot
    Target/1_Stephen_King/positive.json         [{"text"}]: a forget corpus (Llama-3-8B-Instruct's own description)
    Target/1_Stephen_King/passage.json          [{"text"}]: a forget corpus (the target's Wikipedia passages)

Only the probe files of the forget and neighbour levels are required; the MIA, MMLU and corpus files are read
when present. The folder given may be the `Target` folder itself or one that holds it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..metrics.mcq import MCQuestion

ENV_DIR = "UNLEARN_RWKU_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[3]
PROBE_FILES = {  # probe set: file (every one required)
    "forget_fb": "forget_level1.json",
    "forget_qa": "forget_level2.json",
    "forget_aa": "forget_level3.json",
    "neighbor_fb": "neighbor_level1.json",
    "neighbor_qa": "neighbor_level2.json",
}
MIA_FILES = {"mia_forget": "forget_mia.json", "mia_retain": "retain_mia.json"}
MMLU_FILE = "retain_mmlu.json"
CORPUS_FILES = {"positive": "positive.json", "passage": "passage.json"}
_TARGET_DIR = re.compile(r"^(\d+)_(.+)$")


@dataclass(frozen=True)
class Probe:
    query: str
    answer: str
    type: str = ""  # the attack of an adversarial probe ('affirmative suffix', 'incontext learning', ...)


@dataclass(frozen=True)
class MmluItem:
    question: MCQuestion
    task: str
    shots: tuple[MCQuestion, ...]


@dataclass
class RwkuTarget:
    """One unlearning target's files, checked."""

    index: int  # the benchmark's number (1..200)
    name: str
    directory: Path
    probes: dict[str, list[Probe]]  # PROBE_FILES keys
    mia_forget: list[str] = field(default_factory=list)
    mia_retain: list[str] = field(default_factory=list)
    mmlu: list[MmluItem] = field(default_factory=list)

    def corpus(self, name: str) -> list[str]:
        """A published forget corpus of the target (CORPUS_FILES: 'positive' or 'passage')."""
        if name not in CORPUS_FILES:
            raise ConfigError(f"unknown RWKU corpus {name!r}; use one of {', '.join(CORPUS_FILES)} or 'generate'")
        path = self.directory / CORPUS_FILES[name]
        if not path.is_file():
            raise ConfigError(f"{path} not found: target {self.index} has no '{name}' corpus; use --corpus generate "
                              "(the model's own description of the target) or another corpus")
        texts = [_text(r, path, i) for i, r in enumerate(_records(path))]
        if not any(t.strip() for t in texts):
            raise ConfigError(f"{path} holds only blank texts")
        return [t for t in texts if t.strip()]


def default_source() -> Path:
    """$UNLEARN_RWKU_DIR if set, else the repository's ../shared/datasets/rwku."""
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else _REPO_ROOT.parent / "shared" / "datasets" / "rwku"


def target_folders(source: str | os.PathLike | None = None) -> dict[int, Path]:
    """{number: folder} of every target folder ('<number>_<name>') of the layout."""
    root = Path(source).expanduser() if source else default_source()
    if not root.is_dir():
        raise ConfigError(f"no RWKU data at {root}: pass --data DIR (the processed layout: Target/<n>_<name>/*.json) "
                          f"or set {ENV_DIR}")
    folder = root / "Target" if (root / "Target").is_dir() else root
    found = {}
    for path in folder.iterdir():
        match = _TARGET_DIR.match(path.name)
        if path.is_dir() and match:
            found[int(match.group(1))] = path
    if not found:
        raise ConfigError(f"{folder} holds no target folder named '<number>_<name>' (e.g. 1_Stephen_King)")
    return found


def parse_targets(text: str, available: dict[int, Path]) -> list[int]:
    """'1-5', '3', '1,4,9' or 'all' -> target numbers, each of which must exist."""
    text = text.strip()
    if text == "all":
        return sorted(available)
    numbers: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            numbers += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
        except ValueError:
            raise ConfigError(f"targets {text!r}: use numbers, ranges and commas, e.g. 1-5 or 1,4,9 (or 'all')") from None
    missing = [n for n in numbers if n not in available]
    if missing or not numbers:
        raise ConfigError(f"targets {text!r}: no target folder for {missing or 'any'}; the data has targets "
                          f"{_ranges(sorted(available))}")
    return list(dict.fromkeys(numbers))


def _ranges(numbers: list[int]) -> str:
    spans, start = [], numbers[0]
    for a, b in zip(numbers, numbers[1:] + [None], strict=True):
        if b != a + 1:
            spans.append(str(start) if start == a else f"{start}-{a}")
            start = b
    return ",".join(spans)


def _records(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); restore the published file") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ConfigError(f"{path} must be a JSON list of objects (the published RWKU layout)")
    return data


def _text(record: dict, path: Path, i: int, key: str = "text") -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: record {i} needs a '{key}' text")
    return value


def _probes(path: Path) -> list[Probe]:
    probes = []
    for i, r in enumerate(_records(path)):
        query, answer = _text(r, path, i, "query"), _text(r, path, i, "answer")
        if not query.strip() or not answer.strip():
            raise ConfigError(f"{path}: record {i} has an empty 'query' or 'answer'")
        probes.append(Probe(query, answer, str(r.get("type") or "")))
    if not probes:
        raise ConfigError(f"{path} holds no probes")
    return probes


def _mcq(record: dict, path: Path, i: int) -> MCQuestion:
    question, choices, answer = record.get("question"), record.get("choices"), record.get("answer")
    if not isinstance(question, str) or not isinstance(choices, list) or not 2 <= len(choices) <= 4 \
            or not all(isinstance(c, str) for c in choices):
        raise ConfigError(f"{path}: record {i} needs 'question' and 'choices' (two to four texts)")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        raise ConfigError(f"{path}: record {i}: 'answer' must be the index of a choice, got {answer!r}")
    return MCQuestion(question, tuple(choices), answer)


def _mmlu(path: Path) -> list[MmluItem]:
    items = []
    for i, r in enumerate(_records(path)):
        shots = r.get("examples") or []
        if not isinstance(shots, list) or not all(isinstance(s, dict) for s in shots):
            raise ConfigError(f"{path}: record {i}: 'examples' must be a list of solved questions")
        items.append(MmluItem(_mcq(r, path, i), str(r.get("task") or ""),
                              tuple(_mcq(s, path, i) for s in shots)))
    return items


def load_target(index: int, folder: Path) -> RwkuTarget:
    """The target's files, checked: every probe file must be there; MIA and MMLU files are optional."""
    probes = {}
    for key, name in PROBE_FILES.items():
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"RWKU file {name} not found in {folder}; every target folder needs "
                              f"{', '.join(PROBE_FILES.values())}")
        probes[key] = _probes(path)
    name = _TARGET_DIR.match(folder.name).group(2).replace("_", " ")
    intro = folder / "intro.json"
    if intro.is_file():
        records = _records(intro)
        if records and isinstance(records[0].get("target"), str) and records[0]["target"].strip():
            name = records[0]["target"].strip()
    mia = {key: [_text(r, folder / f, i) for i, r in enumerate(_records(folder / f))] if (folder / f).is_file() else []
           for key, f in MIA_FILES.items()}
    mmlu = _mmlu(folder / MMLU_FILE) if (folder / MMLU_FILE).is_file() else []
    return RwkuTarget(index, name, folder, probes, mia["mia_forget"], mia["mia_retain"], mmlu)


def load_targets(spec: str, source: str | os.PathLike | None = None) -> list[RwkuTarget]:
    """The targets named by `spec` ('1-5', '1,3', 'all'), loaded and checked before any model work."""
    folders = target_folders(source)
    return [load_target(n, folders[n]) for n in parse_targets(spec, folders)]
