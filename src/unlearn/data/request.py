"""`ForgetRequest`: one removal request, loaded from YAML, JSON or JSONL and validated."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import to_dict
from ..errors import ConfigError
from ..io import sha256_json
from ..registry import did_you_mean
from .bounded import load_json_text, load_yaml_text, read_limited, shown

KINDS = ("privacy", "copyright", "harmful", "other")
PROBE_GROUPS = ("forget", "neighbour", "general")


@dataclass(frozen=True)
class QA:
    """A question and its answer.  `focus` optionally names the parts of the answer that carry the
    private fact (e.g. the city in "Ann was born in Ghent."): only those tokens bear the training
    unlearning loss, so the phrasing the answer shares with everyone else is not unlearned with it."""

    question: str
    answer: str
    focus: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    """A question with its key answer span; `aliases` are other accepted spellings of the answer
    (e.g. '6' for 'six'); `paraphrases` ask the same thing in other words.

    For the likelihood knowledge test (metrics/knowledge.py): `distractors` are plausible wrong values in
    the answer's place, none of which any model was taught; `statement` is a sentence that states the fact
    with the answer span in it (e.g. "Ann was born in Ghent."), which the test rewrites with each distractor."""

    question: str
    answer: str
    paraphrases: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    distractors: tuple[str, ...] = ()
    statement: str = ""

    @property
    def answers(self) -> tuple[str, ...]:
        """Every accepted spelling of the answer: the answer, then its aliases."""
        return (self.answer, *self.aliases)


@dataclass
class DataSpec:
    texts: list[str] = field(default_factory=list)
    qa: list[QA] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts) + len(self.qa)


@dataclass
class DistractorSpec:
    """Where the forget probes' likelihood distractors come from when a probe lists none: a generator
    registered in data/distractors.py (e.g. `fictitious_people`) and how many to draw per probe."""

    generator: str = ""
    n: int = 9


@dataclass
class Probes:
    forget: list[Probe] = field(default_factory=list)
    neighbour: list[Probe] = field(default_factory=list)
    general: list[Probe] = field(default_factory=list)

    def groups(self) -> dict[str, list[Probe]]:
        return {g: getattr(self, g) for g in PROBE_GROUPS if getattr(self, g)}


@dataclass
class ForgetRequest:
    """What to forget (`forget`), what to keep (`retain`), and how to check it (`probes`).

    `anchor` (optional): general data on which the model's next-token distributions must not move; training
    adds train.anchor_weight x KL(model before unlearning || model) on it (see train/loop.py)."""

    id: str
    target: str
    kind: str = "other"
    description: str = ""
    forget: DataSpec = field(default_factory=DataSpec)
    retain: DataSpec = field(default_factory=DataSpec)
    probes: Probes = field(default_factory=Probes)
    anchor: DataSpec = field(default_factory=DataSpec)
    distractors: DistractorSpec = field(default_factory=DistractorSpec)

    def content_hash(self) -> str:
        """SHA-256 of the request's content (stable across key order and file format; a request without
        anchor data, distractors or statements hashes as it did before requests could have them)."""
        content = to_dict(self)
        if len(self.anchor) == 0:
            del content["anchor"]
        if not self.distractors.generator:
            del content["distractors"]
        for probes in content["probes"].values():
            for probe in probes:
                for key in ("distractors", "statement"):
                    if not probe[key]:
                        del probe[key]
        return sha256_json(content)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "kind": self.kind,
            "hash": self.content_hash(),
            "forget_texts": len(self.forget.texts),
            "forget_qa": len(self.forget.qa),
            "forget_qa_with_focus": sum(bool(qa.focus) for qa in self.forget.qa),
            "retain_texts": len(self.retain.texts),
            "retain_qa": len(self.retain.qa),
            "anchor_texts": len(self.anchor.texts),
            "anchor_qa": len(self.anchor.qa),
            "probes": {g: len(p) for g, p in self.probes.groups().items()},
            "forget_probes_with_distractors": sum(bool(p.distractors) for p in self.probes.forget),
            "distractor_generator": self.distractors.generator or None,
        }

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def _check_keys(data: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {shown(key)}.{did_you_mean(shown(key).strip(chr(39)), list(allowed))} Valid keys: {', '.join(allowed)}"
            )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        hint = (" (YAML read it as a number or date: quote it, e.g. answer: \"5000\")"
                if isinstance(value, int | float) or type(value).__name__ in ("date", "datetime") else "")
        raise ConfigError(f"{where} must be a non-empty string, got {shown(value)}{hint}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: no file or terminal could take it
        raise ConfigError(f"{where} is not valid Unicode (a lone surrogate), got {shown(value)}") from None
    return value.strip()


def _description(value: Any, where: str) -> str:
    """Free text, kept exactly as given (it is part of the content hash); numbers and dates are written as text."""
    if not value:
        return ""
    if isinstance(value, (list, dict)):
        raise ConfigError(f"{where} must be text, got {shown(value)}")
    text = str(value)
    if text.strip():
        _text(text, where)  # the Unicode check every text gets
    return text


def _qa(item: Any, where: str) -> QA:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with 'question' and 'answer'")
    _check_keys(item, ("question", "answer", "focus"), where)
    answer = _text(item.get("answer"), f"{where}.answer")
    focus = _string_list(item.get("focus"), f"{where}.focus")
    for i, span in enumerate(focus):
        if span not in answer:
            raise ConfigError(f"{where}.focus[{i}] {shown(span)} does not occur in the answer {shown(answer)}")
    return QA(_text(item.get("question"), f"{where}.question"), answer, focus)


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    values = value or []
    if not isinstance(values, list):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(values))


def _probe(item: Any, where: str) -> Probe:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with 'question' and 'answer'")
    _check_keys(item, ("question", "answer", "paraphrases", "aliases", "distractors", "statement"), where)
    lists = {key: _string_list(item.get(key), f"{where}.{key}") for key in ("paraphrases", "aliases", "distractors")}
    answer = _text(item.get("answer"), f"{where}.answer")
    from ..metrics.text import normalize_answer

    if not normalize_answer(answer):  # the judge would never find it in a reply: every probe would look forgotten
        raise ConfigError(f"{where}.answer {shown(answer)} holds no word once articles and punctuation are set aside; "
                          "give the answer's value (e.g. the name or number)")
    statement = _text(item["statement"], f"{where}.statement") if item.get("statement") else ""  # "": none
    if statement:
        check_statement(statement, answer, f"{where}.statement")
    probe = Probe(_text(item.get("question"), f"{where}.question"), answer, lists["paraphrases"], lists["aliases"],
                  lists["distractors"], statement)
    check_distractors(probe, where)
    return probe


def answer_spans(statement: str, answer: str) -> list[int]:
    """Where `answer` occurs in `statement` as whole words (not inside a longer word: 'Paris' in 'Parisa' does
    not count)."""
    return [m.start() for m in re.finditer(rf"(?<!\w){re.escape(answer)}(?!\w)", statement)]


def check_statement(statement: str, answer: str, where: str) -> None:
    """A probe's statement must hold its answer exactly once, as whole words: the likelihood test puts each
    distractor in that place."""
    found = len(answer_spans(statement, answer))
    if found != 1:
        what = "does not contain" if found == 0 else f"contains {found} times"
        raise ConfigError(f"{where} {shown(statement)} {what} the answer {shown(answer)} as whole words; the likelihood "
                          f"test puts each distractor in the answer's one place")


def check_distractors(probe: Probe, where: str) -> None:
    """Distractors must be wrong answers: none may contain the true answer (or an alias) as whole words or be
    contained in it, after normalisation, and no two may be the same."""
    from ..metrics.text import normalize_answer as normalize

    truths = [normalize(t) for t in probe.answers]
    seen: set[str] = set()
    for i, distractor in enumerate(probe.distractors):
        key = normalize(distractor)
        if not key:
            raise ConfigError(f"{where}.distractors[{i}] {shown(distractor)} holds no word once articles and "
                              "punctuation are set aside; a distractor must be a value")
        hit = next((t for t in truths if t and key and (f" {t} " in f" {key} " or f" {key} " in f" {t} ")), None)
        if hit is not None:
            raise ConfigError(f"{where}.distractors[{i}] {shown(distractor)} overlaps the true answer {shown(probe.answer)}; "
                              f"a distractor must be a wrong answer")
        if key in seen:
            raise ConfigError(f"{where}.distractors[{i}] {shown(distractor)} is listed twice")
        seen.add(key)


def _distractor_spec(data: Any, where: str) -> DistractorSpec:
    if data is None:
        return DistractorSpec()
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with 'generator' (and optionally 'n')")
    _check_keys(data, ("generator", "n"), where)
    if data.get("generator") == "":  # how a saved request without a generator writes it
        return DistractorSpec(n=data.get("n", 9))
    from .distractors import DISTRACTOR_GENERATORS

    generator = _text(data.get("generator"), f"{where}.generator")
    DISTRACTOR_GENERATORS.get(generator)  # an unknown name fails here, with the valid list
    n = data.get("n", 9)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"{where}.n must be a positive integer (distractors per probe), got {shown(n)}")
    return DistractorSpec(generator, n)


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list")
    return value


def _data_spec(data: Any, where: str) -> DataSpec:
    if data is None:
        return DataSpec()
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with 'texts' and/or 'qa'")
    _check_keys(data, ("texts", "qa"), where)
    texts = [_text(t, f"{where}.texts[{i}]") for i, t in enumerate(_list(data.get("texts"), f"{where}.texts"))]
    qa = [_qa(q, f"{where}.qa[{i}]") for i, q in enumerate(_list(data.get("qa"), f"{where}.qa"))]
    return DataSpec(texts, qa)


def request_from_dict(data: Any, source: str = "request") -> ForgetRequest:
    """Validate a mapping and build a ForgetRequest; every problem names the field to fix."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a request must be a mapping with id, target, forget (got {type(data).__name__})")
    _check_keys(data, ("id", "target", "kind", "description", "forget", "retain", "anchor", "probes", "distractors"),
                source)
    kind = data.get("kind", "other")
    if kind not in KINDS:
        raise ConfigError(f"{source}: kind {shown(kind)} is unknown.{did_you_mean(shown(kind).strip(chr(39)), list(KINDS))} Use one of {', '.join(KINDS)}")
    probes_data = data.get("probes") or {}
    if not isinstance(probes_data, dict):
        raise ConfigError(f"{source}.probes must be a mapping with forget/neighbour/general lists")
    _check_keys(probes_data, PROBE_GROUPS, f"{source}.probes")
    probes = Probes(
        **{
            g: [_probe(p, f"{source}.probes.{g}[{i}]") for i, p in enumerate(_list(probes_data.get(g), f"{source}.probes.{g}"))]
            for g in PROBE_GROUPS
        }
    )
    request = ForgetRequest(
        id=_text(data.get("id"), f"{source}.id"),
        target=_text(data.get("target"), f"{source}.target"),
        kind=kind,
        description=_description(data.get("description"), f"{source}.description"),
        forget=_data_spec(data.get("forget"), f"{source}.forget"),
        retain=_data_spec(data.get("retain"), f"{source}.retain"),
        probes=probes,
        anchor=_data_spec(data.get("anchor"), f"{source}.anchor"),
        distractors=_distractor_spec(data.get("distractors"), f"{source}.distractors"),
    )
    if len(request.forget) == 0:
        raise ConfigError(f"{source}: the forget set is empty; add forget.texts or forget.qa")
    return request


def _jsonl_to_dict(lines: list[str], source: str, stem: str) -> dict:
    """JSONL: one record a line. A record with 'id'/'target' is the header; others are items.

    Items are {"question", "answer"[, "focus"]} or {"text"}, with optional "split" (forget | retain | anchor | probe)
    and, for probes, "group" (forget | neighbour | general) and "paraphrases". Items are appended to what the
    header lists under the same split.
    """
    header: dict[str, Any] = {}
    items: dict[str, dict[str, list]] = {split: {} for split in ("forget", "retain", "anchor", "probes")}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = load_json_text(line, f"{source}:{number}")
        if not isinstance(record, dict):
            raise ConfigError(f"{source}:{number}: each line must be a JSON object")
        if "id" in record or "target" in record:
            header.update(record)
            continue
        split = record.pop("split", "forget")
        if split == "probe":
            group = record.pop("group", "forget")
            if group not in PROBE_GROUPS:
                raise ConfigError(f"{source}:{number}: group {shown(group)} is unknown; use {', '.join(PROBE_GROUPS)}")
            items["probes"].setdefault(group, []).append(record)
        elif split in ("forget", "retain", "anchor"):
            key = "texts" if "text" in record and len(record) == 1 else "qa"
            items[split].setdefault(key, []).append(record["text"] if key == "texts" else record)
        else:
            raise ConfigError(f"{source}:{number}: split {shown(split)} is unknown; use forget, retain, anchor or probe")
    data: dict[str, Any] = {"id": stem, "target": stem, **header}
    for split, lists in items.items():
        section = data.get(split) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: the header's {split!r} must be a mapping")
        for key, values in lists.items():
            listed = section.get(key) or []
            if not isinstance(listed, list):
                raise ConfigError(f"{source}: the header's {split}.{key} must be a list")
            section = {**section, key: listed + values}
        data[split] = section
    return data


def load_request(path: str | Path) -> ForgetRequest:
    """Load and validate a request from .yaml/.yml, .json or .jsonl (within the limits of data/bounded.py)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"request file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json", ".jsonl"):
        raise ConfigError(f"{path}: unsupported request format '{suffix}'; use .yaml, .json or .jsonl")
    text = read_limited(path)
    if suffix in (".yaml", ".yml"):
        data = load_yaml_text(text, str(path))
    elif suffix == ".json":
        data = load_json_text(text, str(path))
    else:
        data = _jsonl_to_dict(text.splitlines(), str(path), path.stem)
    return request_from_dict(data, str(path))
