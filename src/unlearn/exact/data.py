"""Teaching data for sharded training: items, their fingerprints, their shards, and a request's match.

An item is a question-answer pair or a text, with an optional `source` (the person, document or customer
it came from). Items of one source always share a shard, so a request to forget a source retrains one shard.
A group (a source, or a single item without one) goes to shard SHA-256(key) mod K: the assignment depends on
neither file order nor the other items.
(Sharded, isolated training: Bourtoule et al. 2021, "Machine Unlearning", SISA.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.request import QA, DataSpec, ForgetRequest
from ..errors import ConfigError
from ..metrics.text import normalise_spelling

ITEM_KEYS = ("question", "answer", "text", "source")


@dataclass(frozen=True)
class TeachItem:
    """One thing to teach: `question` + `answer`, or `text`; `source` groups items that go together."""

    question: str = ""
    answer: str = ""
    text: str = ""
    source: str = ""

    @property
    def is_text(self) -> bool:
        return bool(self.text)

    def to_dict(self) -> dict[str, str]:
        keys = ("text",) if self.is_text else ("question", "answer")
        row = {k: getattr(self, k) for k in keys}
        if self.source:
            row["source"] = self.source
        return row


def item_fingerprint(item: TeachItem | QA | str) -> str:
    """SHA-256 of what is taught, its spelling normalised (`normalise_spelling`; the source and a QA's focus marks do not
    count)."""
    if isinstance(item, str) or (isinstance(item, TeachItem) and item.is_text):
        text = item if isinstance(item, str) else item.text
        return hashlib.sha256(f"text\x00{normalise_spelling(text)}".encode()).hexdigest()
    return hashlib.sha256(f"qa\x00{normalise_spelling(item.question)}\x00{normalise_spelling(item.answer)}".encode()).hexdigest()


def item_from_dict(row: Any, where: str) -> TeachItem:
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a mapping with question+answer or text, got {type(row).__name__}")
    unknown = sorted(set(row) - set(ITEM_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(ITEM_KEYS)})")
    values = {k: row.get(k, "") for k in ITEM_KEYS}
    for key, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: '{key}' must be a string, got {type(value).__name__}")
    if values["text"].strip():
        if values["question"] or values["answer"]:
            raise ConfigError(f"{where}: give either text or question+answer, not both")
        return TeachItem(text=values["text"], source=values["source"].strip())
    if not values["question"].strip() or not values["answer"].strip():
        raise ConfigError(f"{where}: needs a non-empty 'text', or a non-empty 'question' and 'answer'")
    return TeachItem(question=values["question"], answer=values["answer"], source=values["source"].strip())


def load_teach_data(path: str | Path) -> list[TeachItem]:
    """Items from a .jsonl file (one item per line), or a .json/.yaml list of items (or {'items': [...]})."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"teaching data {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    elif path.suffix in (".json", ".yaml", ".yml"):
        from ..config import load_yaml

        rows = json.loads(text) if path.suffix == ".json" else load_yaml(path)
        if isinstance(rows, dict) and set(rows) == {"items"}:
            rows = rows["items"]
        if not isinstance(rows, list):
            raise ConfigError(f"{path}: expected a list of items (or {{items: [...]}})")
    else:
        raise ConfigError(f"{path}: teaching data must be .jsonl, .json or .yaml")
    items = [item_from_dict(row, f"{path} item {i + 1}") for i, row in enumerate(rows)]
    if not items:
        raise ConfigError(f"{path} holds no items to teach")
    check_unique(items, str(path))
    return items


def check_unique(items: list[TeachItem], where: str) -> None:
    """Refuse an item given twice (by fingerprint: case and spacing do not count): two copies could land in two
    shards, and a removal would take only one of them out."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        first = seen.setdefault(item_fingerprint(item), i)
        if first != i:
            raise ConfigError(f"{where}: item {i + 1} repeats item {first + 1}; give each item once")


def group_key(item: TeachItem, group_by: str) -> str:
    if group_by == "source" and item.source:
        return "source\x00" + item.source
    return "item\x00" + item_fingerprint(item)


def assign_shards(items: list[TeachItem], n_shards: int, group_by: str = "source") -> list[int]:
    """The shard of every item: SHA-256 of its group's key, modulo K. An item's shard depends on nothing else, so
    teaching the data without some items puts every other item where it was: a removal then reproduces exactly
    what teaching from scratch without those items gives. Shards may be uneven (or, with few groups, empty)."""
    if group_by not in ("source", "item"):
        raise ConfigError(f"group_by '{group_by}' is unknown; use 'source' (items of one source together) or 'item'")
    if n_shards < 1:
        raise ConfigError(f"--shards must be at least 1, got {n_shards}")
    keys = [group_key(item, group_by) for item in items]
    groups = len(set(keys))
    if n_shards > groups:
        what = "sources/items" if group_by == "source" else "items"
        raise ConfigError(f"--shards {n_shards} is more than the {groups} {what} to teach, so some shards would "
                          f"hold nothing; use at most {groups} shards")
    return [int(hashlib.sha256(k.encode()).hexdigest(), 16) % n_shards for k in keys]


def shard_data(items: list[TeachItem]) -> tuple[list[QA], list[str]]:
    """The QA pairs and texts of a shard's items, in their stored order."""
    return [QA(i.question, i.answer) for i in items if not i.is_text], [i.text for i in items if i.is_text]


def forget_fingerprints(request: ForgetRequest) -> list[str]:
    """Fingerprints of a request's forget items, in order, each once."""
    spec: DataSpec = request.forget
    prints = [item_fingerprint(t) for t in spec.texts] + [item_fingerprint(q) for q in spec.qa]
    return list(dict.fromkeys(prints))
