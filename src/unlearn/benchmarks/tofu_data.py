"""TOFU data: typed rows, the table of published splits, validated loading, and CPU-sized "mini" subsets.

TOFU (Maini et al. 2024, arXiv:2401.06121) is 200 fictitious authors x 20 question/answer pairs,
published on the hub as `locuslab/TOFU` with one config per split. `load_split(source, name)` reads one
split from a local directory of JSONL files (one file per config, the hub's field names; see
`../shared/datasets/README.md`) or from the hub, and checks every row.

What the published files contain (checked row by row against `full`, matching on question *and* answer,
because one question, "What is the full name of the author?", occurs twice in `full`: rows 100 and 440,
authors 5 and 22, with different answers):

- `full` is in author order: author i (0-based) is rows 20*i .. 20*i+19.
- `forget01/05/10` are rows 3960/3800/3600 .. 3999 of `full` (the last 2/10/20 authors) and
  `retain99/95/90` are all rows before them, both in `full`'s order.
- `forgetXX_perturbed` has forgetXX's questions and answers in the same order; forget01_perturbed and
  forget05_perturbed are exactly the last 40 / 200 rows of forget10_perturbed.
- `retain_perturbed` (400 rows) is rows 0..399 of `full` in order: the FIRST 20 authors (0-19).
  It shares no row with any forget split; it is a fixed sample of retained authors, not their neighbours.
- `holdout10` is 20 other authors x 20 rows (none in `full`); holdout01 and holdout05 are its first
  40 and 200 rows.
- `real_authors_perturbed` / `world_facts_perturbed` list as `perturbed_answer` the options of
  `real_authors` / `world_facts` other than the answer, in order.

Mini subsets (`mini_authors`): take the last `n_authors` authors of `full`; the forget split is the
last round(n_authors * percent / 100) of them (at least one), the retain split is the rest, so
`mini_authors(20, 10).forget` is exactly `forget01`. No randomness: authors are taken by position.
The holdout is the first 20 rows per forget author of holdoutXX (holdout files are author blocks,
nested as prefixes, so this is again a published prefix).
The mini subsets of at most 195 authors never teach authors 0-4, whose published `retain_perturbed` rows
(paraphrases and perturbed answers) become `unseen_perturbed`: how the model treats authors it never saw,
the yardstick of forget quality without a retain model.

A clean mini design is impossible for the retain perturbations: `retain_perturbed` covers authors
0-19, which no subset of the last n <= 180 authors contains. The most faithful alternative, used here:
`forget10_perturbed` covers authors 180-199, i.e. every author of a subset of <= 20 authors, so the
retain authors' published paraphrases and perturbed answers are taken from it. Nothing is generated,
the subset stays contiguous, and the retain evaluation set is, as in TOFU, about authors the model was
trained on and does not forget. When the subset reaches authors 0-19 (n_authors > 180) the published
`retain_perturbed` rows of its retain authors are used instead, so `mini_authors(200, p)` reproduces
`load_tofu(p)` exactly. For 20 < n_authors <= 180 only the retain authors among 180-199 have
perturbed rows. (Rejected: a subset of first and last authors, which would fit `retain_perturbed` but
breaks the "last n authors" rule and is no better a sample.)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import did_you_mean

HUB_ID = "locuslab/TOFU"
ENV_DIR = "UNLEARN_TOFU_DIR"
N_AUTHORS = 200
QA_PER_AUTHOR = 20
PERCENTS = (1, 5, 10)
UNSEEN_AUTHORS = 5  # never-taught authors (of retain_perturbed's 0-19) behind `unseen_perturbed`
_REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class QARow:
    """A question and its answer (full, forgetXX, retainXX, holdoutXX)."""

    question: str
    answer: str


@dataclass(frozen=True)
class PerturbedRow:
    """A QA row with a paraphrase and 5 wrong answers (forgetXX_perturbed, retain_perturbed)."""

    question: str
    answer: str
    paraphrased_question: str
    paraphrased_answer: str
    perturbed_answer: tuple[str, ...]


@dataclass(frozen=True)
class ChoiceRow:
    """A multiple-choice row (real_authors, world_facts): `options` are option1..4, one is the answer."""

    question: str
    answer: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class OptionsRow:
    """A question, its answer and 3 wrong options (real_authors_perturbed, world_facts_perturbed)."""

    question: str
    answer: str
    perturbed_answer: tuple[str, ...]


Row = QARow | PerturbedRow | ChoiceRow | OptionsRow

_OPTIONS = tuple(f"option{i}" for i in range(1, 5))
_KINDS: dict[
    str, tuple[type, tuple[str, ...], int]
] = {  # kind -> (row type, required fields, perturbed length)
    "qa": (QARow, ("question", "answer"), 0),
    "perturbed": (
        PerturbedRow,
        ("question", "answer", "paraphrased_question", "paraphrased_answer", "perturbed_answer"),
        5,
    ),
    "choice": (ChoiceRow, ("question", "answer", *_OPTIONS), 0),
    "options": (OptionsRow, ("question", "answer", "perturbed_answer"), 3),
}


@dataclass(frozen=True)
class SplitSpec:
    """One published split: its name, row kind and row count on the hub."""

    name: str
    kind: str
    rows: int

    @property
    def row_type(self) -> type:
        return _KINDS[self.kind][0]

    @property
    def fields(self) -> tuple[str, ...]:
        return _KINDS[self.kind][1]

    @property
    def n_perturbed(self) -> int:
        return _KINDS[self.kind][2]


def _split_table() -> dict[str, SplitSpec]:
    specs = [SplitSpec("full", "qa", N_AUTHORS * QA_PER_AUTHOR)]
    for p in PERCENTS:
        size = 2 * p * QA_PER_AUTHOR
        specs += [
            SplitSpec(f"forget{p:02d}", "qa", size),
            SplitSpec(f"retain{100 - p}", "qa", N_AUTHORS * QA_PER_AUTHOR - size),
            SplitSpec(f"holdout{p:02d}", "qa", size),
            SplitSpec(f"forget{p:02d}_perturbed", "perturbed", size),
        ]
    specs += [
        SplitSpec("retain_perturbed", "perturbed", 400),
        SplitSpec("real_authors", "choice", 100),
        SplitSpec("world_facts", "choice", 117),
        SplitSpec("real_authors_perturbed", "options", 100),
        SplitSpec("world_facts_perturbed", "options", 117),
    ]
    return {s.name: s for s in specs}


SPLITS: dict[str, SplitSpec] = _split_table()
PAIRS: dict[str, tuple[str, str]] = {
    f"forget{p:02d}": (f"retain{100 - p}", f"holdout{p:02d}") for p in PERCENTS
}


def split_spec(name: str) -> SplitSpec:
    """The spec of a published split; an unknown name is a ConfigError with a suggestion."""
    if name not in SPLITS:
        names = list(SPLITS)
        raise ConfigError(
            f"unknown TOFU split '{name}'.{did_you_mean(str(name), names)} Valid splits: {', '.join(names)}"
        )
    return SPLITS[name]


def paired_splits(forget: str) -> tuple[str, str]:
    """(retain, holdout) split names that go with a forget split: forgetXX -> retain(100-XX), holdoutXX."""
    if forget not in PAIRS:
        raise ConfigError(
            f"'{forget}' is not a TOFU forget split.{did_you_mean(str(forget), list(PAIRS))} "
            f"Use one of {', '.join(PAIRS)}"
        )
    return PAIRS[forget]


def author_rows(author: int) -> range:
    """Row indices of `full` that belong to author `author` (0-based)."""
    return range(QA_PER_AUTHOR * author, QA_PER_AUTHOR * (author + 1))


# ---------------------------------------------------------------------------------------------- sources


def default_source() -> Path | None:
    """$UNLEARN_TOFU_DIR if set, else the repository's ../shared/datasets/tofu if it exists, else None."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    candidate = _REPO_ROOT.parent / "shared" / "datasets" / "tofu"
    return candidate if candidate.is_dir() else None


def resolve_source(source: str | os.PathLike | None) -> Path | str:
    """A checked local directory, or HUB_ID; anything else is a ConfigError naming the fix."""
    via = ""
    if source is None:
        source = default_source()
        if source is None:
            raise ConfigError(
                f"no TOFU data directory: pass a directory of TOFU JSONL files, set {ENV_DIR}, "
                f"or use '{HUB_ID}' when online"
            )
        via = f" (from {ENV_DIR})" if os.environ.get(ENV_DIR) else ""
    path = Path(source)
    if path.is_dir():
        return path
    if str(source) == HUB_ID:
        return HUB_ID
    raise ConfigError(
        f"TOFU directory not found: {path}{via}; pass a directory holding the TOFU JSONL files "
        f"(full.jsonl, forget10.jsonl, ...) or '{HUB_ID}' when online"
    )


def _read_jsonl(path: Path) -> list[tuple[str, Any]]:
    """(location 'file:line', parsed object) for every non-blank line."""
    records = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    records.append((f"{path}:{number}", json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ConfigError(
                        f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                        "fix that line or download the split again"
                    ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; download the split again") from None
    return records


def _file_records(directory: Path, spec: SplitSpec) -> list[tuple[str, Any]]:
    path = directory / f"{spec.name}.jsonl"
    if not path.is_file():
        raise ConfigError(
            f"{directory} has no {path.name} (TOFU split '{spec.name}'); add it, one JSON object a line "
            f"with {', '.join(spec.fields)}, or pass the directory that holds it"
        )
    records = _read_jsonl(path)
    if not records:
        raise ConfigError(
            f"{path} is empty; TOFU split '{spec.name}' has {spec.rows} rows "
            f"({', '.join(spec.fields)}): download it again"
        )
    return records


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _hub_records(spec: SplitSpec) -> list[tuple[str, Any]]:
    """Rows of one config from the hub, via `datasets` (imported here: an optional dependency)."""
    fix = f"pass a local directory of TOFU JSONL files (e.g. ../shared/datasets/tofu) or set {ENV_DIR}"
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"loading '{HUB_ID}' needs the 'datasets' package: pip install datasets, or {fix}"
        ) from None
    try:
        data = datasets.load_dataset(HUB_ID, spec.name, split="train")
    except Exception as exc:  # offline, unknown config, network: all mean "use a local copy"
        raise ConfigError(
            f"could not load '{HUB_ID}' config '{spec.name}' from the Hugging Face hub ({_first_line(exc)}); "
            f"when offline, {fix}"
        ) from None
    records = [(f"{HUB_ID}/{spec.name} row {i}", dict(row)) for i, row in enumerate(data)]
    if not records:
        raise ConfigError(f"'{HUB_ID}' config '{spec.name}' is empty on the hub; {fix}")
    return records


# ---------------------------------------------------------------------------------------------- rows


def _field(record: dict, key: str, spec: SplitSpec, where: str) -> str | tuple[str, ...]:
    """One checked field value: a string, or for perturbed_answer a list of exactly n strings."""
    if key not in record:
        have = ", ".join(map(str, record)) or "no fields"
        raise ConfigError(
            f"{where}: missing field '{key}' (split '{spec.name}' needs {', '.join(spec.fields)}; "
            f"the row has {have})"
        )
    value = record[key]
    if key == "perturbed_answer":
        n = spec.n_perturbed
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(
                f"{where}: field '{key}' must be a list of {n} strings, got {type(value).__name__}"
            )
        if len(value) != n:
            raise ConfigError(
                f"{where}: field '{key}' must hold {n} answers in split '{spec.name}', got {len(value)}"
            )
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    return value


def _row(spec: SplitSpec, record: Any, where: str) -> Row:
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: each row must be a JSON object with {', '.join(spec.fields)}")
    values = {key: _field(record, key, spec, where) for key in spec.fields}
    if spec.kind == "choice":
        options = tuple(values.pop(key) for key in _OPTIONS)
        return ChoiceRow(values["question"], values["answer"], options)
    return spec.row_type(**values)


def load_split(source: str | os.PathLike | None, name: str) -> list[Row]:
    """Load and check one TOFU split from a local directory (None: `default_source()`) or HUB_ID."""
    spec = split_spec(name)
    where = resolve_source(source)
    records = _hub_records(spec) if where == HUB_ID else _file_records(where, spec)
    return [_row(spec, record, location) for location, record in records]


# ---------------------------------------------------------------------------------------------- bundles


@dataclass
class TofuSplits:
    """The data of one TOFU setting. real_authors / world_facts are the `_perturbed` files (options rows).

    `forget_authors` / `retain_authors` are author indices into `full` (author i = rows 20*i .. 20*i+19).
    """

    forget: list[QARow]
    retain: list[QARow]
    holdout: list[QARow]
    forget_perturbed: list[PerturbedRow]
    retain_perturbed: list[PerturbedRow]
    real_authors: list[OptionsRow]
    world_facts: list[OptionsRow]
    forget_authors: tuple[int, ...] = ()
    retain_authors: tuple[int, ...] = ()
    # Published perturbed rows of authors the setting never teaches (empty when it teaches them all): the
    # reference of forget quality without a retain model (`unseen_forget_quality`).
    unseen_perturbed: list[PerturbedRow] = field(default_factory=list)

    def describe(self) -> dict[str, int]:
        """Counts: authors on each side, then rows per split."""
        counts = {"forget_authors": len(self.forget_authors), "retain_authors": len(self.retain_authors)}
        return counts | {f.name: len(v) for f in fields(self) if isinstance(v := getattr(self, f.name), list)}


def _check_percent(percent: int) -> None:
    if percent not in PERCENTS:
        raise ConfigError(f"percent must be one of 1, 5, 10 (TOFU's forget01/05/10), got {percent!r}")


def _general(source: Path | str, n_general: int | None) -> tuple[list[OptionsRow], list[OptionsRow]]:
    """real_authors_perturbed and world_facts_perturbed, optionally only their first n_general rows."""
    rows = [
        load_split(source, name)[:n_general] for name in ("real_authors_perturbed", "world_facts_perturbed")
    ]
    return rows[0], rows[1]


def load_tofu(percent: int = 10, source: str | os.PathLike | None = None) -> TofuSplits:
    """The published setting: forgetXX, retain(100-XX), holdoutXX, their perturbed files, general sets."""
    _check_percent(percent)
    where = resolve_source(source)
    forget = f"forget{percent:02d}"
    retain, holdout = paired_splits(forget)
    k = 2 * percent
    real_authors, world_facts = _general(where, None)
    return TofuSplits(
        forget=load_split(where, forget),
        retain=load_split(where, retain),
        holdout=load_split(where, holdout),
        forget_perturbed=load_split(where, f"{forget}_perturbed"),
        retain_perturbed=load_split(where, "retain_perturbed"),
        real_authors=real_authors,
        world_facts=world_facts,
        forget_authors=tuple(range(N_AUTHORS - k, N_AUTHORS)),
        retain_authors=tuple(range(N_AUTHORS - k)),
    )


def forget_author_count(n_authors: int, percent: int) -> int:
    """round(n_authors * percent / 100), halves rounded up, at least 1."""
    return max(1, (n_authors * percent + 50) // 100)


def _full_by_author(source: Path | str) -> list[QARow]:
    full = load_split(source, "full")
    if len(full) != N_AUTHORS * QA_PER_AUTHOR:
        raise ConfigError(
            f"mini subsets need the published 'full' split (200 authors x 20 = 4000 rows); "
            f"{source} has {len(full)} rows"
        )
    return full


def _perturbed_by_author(source: Path | str, name: str, full: list[QARow]) -> dict[int, list[PerturbedRow]]:
    """A perturbed split's rows grouped by author of `full`, after checking they follow `full` in order."""
    rows: list[PerturbedRow] = load_split(source, name)
    index = {(r.question, r.answer): i for i, r in reversed(list(enumerate(full)))}
    start = index.get((rows[0].question, rows[0].answer), -1)
    aligned = start % QA_PER_AUTHOR == 0 and len(rows) % QA_PER_AUTHOR == 0 and start + len(rows) <= len(full)
    if not aligned or any(
        (r.question, r.answer) != (full[start + i].question, full[start + i].answer)
        for i, r in enumerate(rows)
    ):
        raise ConfigError(
            f"{source}: '{name}' does not follow 'full' author by author; "
            "mini subsets need the published TOFU files"
        )
    first = start // QA_PER_AUTHOR
    return {
        first + a: rows[QA_PER_AUTHOR * a : QA_PER_AUTHOR * (a + 1)]
        for a in range(len(rows) // QA_PER_AUTHOR)
    }


def _holdout(source: Path | str, percent: int, k: int) -> list[QARow]:
    """The first 20 rows per forget author of holdoutXX (holdout files are blocks of 20 rows per author)."""
    rows = load_split(source, f"holdout{percent:02d}")
    if len(rows) < k * QA_PER_AUTHOR:
        raise ConfigError(
            f"{source}: holdout{percent:02d} has {len(rows)} rows, "
            f"the mini forget split needs {k * QA_PER_AUTHOR}; "
            "use the published file or fewer authors"
        )
    return rows[: k * QA_PER_AUTHOR]


def _take(by_author: dict[int, list], authors: list[int]) -> list:
    return [row for a in authors if a in by_author for row in by_author[a]]


def _retain_perturbed(retain_authors: list[int], published: dict, from_forget: dict) -> list[PerturbedRow]:
    """Published retain_perturbed rows of the retain authors; if none, their forget10_perturbed rows."""
    return _take(published, retain_authors) or _take(from_forget, retain_authors)


def mini_authors(
    n_authors: int, percent: int = 10, source: str | os.PathLike | None = None, n_general: int | None = None
) -> TofuSplits:
    """A consistent TOFU subset of the last `n_authors` authors; forget = the last `percent`% of them.

    Deterministic (see the module docstring for the design and the data it rests on). `n_general`
    keeps only the first rows of real_authors / world_facts.
    """
    _check_percent(percent)
    if isinstance(n_authors, bool) or not isinstance(n_authors, int) or not 2 <= n_authors <= N_AUTHORS:
        raise ConfigError(
            f"n_authors must be an integer from 2 to {N_AUTHORS} (TOFU's authors), got {n_authors!r}"
        )
    where = resolve_source(source)
    full = _full_by_author(where)
    k = forget_author_count(n_authors, percent)
    authors = list(range(N_AUTHORS - n_authors, N_AUTHORS))
    forget_authors, retain_authors = authors[-k:], authors[:-k]
    forget_pert = _perturbed_by_author(where, "forget10_perturbed", full)
    published_retain = _perturbed_by_author(where, "retain_perturbed", full)
    holdout = _holdout(where, percent, k)
    real_authors, world_facts = _general(where, n_general)
    return TofuSplits(
        forget=[full[i] for a in forget_authors for i in author_rows(a)],
        retain=[full[i] for a in retain_authors for i in author_rows(a)],
        holdout=holdout,
        forget_perturbed=_take(forget_pert, forget_authors),
        retain_perturbed=_retain_perturbed(retain_authors, published_retain, forget_pert),
        real_authors=real_authors,
        world_facts=world_facts,
        forget_authors=tuple(forget_authors),
        retain_authors=tuple(retain_authors),
        unseen_perturbed=_take(published_retain, unseen_authors(authors, sorted(published_retain))),
    )


def unseen_authors(taught: list[int], published: list[int], limit: int = UNSEEN_AUTHORS) -> list[int]:
    """The first `limit` authors with published perturbed rows that the setting never teaches."""
    taught = set(taught)
    return [a for a in published if a not in taught][:limit]
