"""Tests for the general-knowledge set, refusals and example request files."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
import yaml

from unlearn.data.general import GeneralQA, general_knowledge, general_split
from unlearn.data.refusals import REFUSALS, refusal_for
from unlearn.data.request import load_request

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXAMPLE_FILES = ("forget_harry_potter.yaml", "forget_fictional_person.yaml", "forget_pathogen_synthesis.yaml")


def _norm(text: str) -> str:
    text = "".join(" " if ch in string.punctuation else ch for ch in text.lower())
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def test_general_size_and_types() -> None:
    items = general_knowledge()
    assert 100 <= len(items) <= 140
    assert all(isinstance(x, GeneralQA) for x in items)
    assert all(x.question.endswith("?") and x.answer and x.short_answer for x in items)


def test_general_no_duplicate_questions() -> None:
    questions = [_norm(x.question) for x in general_knowledge()]
    assert len(set(questions)) == len(questions)


def test_short_answer_in_answer() -> None:
    for x in general_knowledge():
        keys = (x.short_answer, *x.alternatives)
        assert any(_norm(k) in _norm(x.answer) for k in keys), x


def test_splits_disjoint_and_cover() -> None:
    replay, evals = general_split("replay"), general_split("eval")
    assert 50 <= len(replay) <= 70 and 50 <= len(evals) <= 70
    assert not {x.question for x in replay} & {x.question for x in evals}
    assert {x.question for x in replay} | {x.question for x in evals} == {x.question for x in general_knowledge()}
    assert general_split("eval") == evals


def test_unknown_split_rejected() -> None:
    with pytest.raises(ValueError):
        general_split("train")


def test_refusals() -> None:
    assert len(REFUSALS) == 30
    assert len(set(REFUSALS)) == 30
    assert refusal_for(0) == REFUSALS[0]
    assert refusal_for(31) == REFUSALS[1]
    assert [refusal_for(i) for i in range(60)] == [refusal_for(i) for i in range(60)]


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_requests(name: str) -> None:
    data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    assert {"id", "target", "kind", "description", "forget"} <= set(data)
    assert set(data) <= {"id", "target", "kind", "description", "forget", "retain", "probes"}
    assert data["kind"] in {"privacy", "copyright", "harmful", "other"}
    assert re.fullmatch(r"[a-z0-9-]+", data["id"])
    forget = data["forget"]
    assert 3 <= len(forget["texts"]) <= 6
    assert 8 <= len(forget["qa"]) <= 15
    assert all({"question", "answer"} <= set(row) <= {"question", "answer", "focus"} for row in forget["qa"])
    assert all(set(row) == {"question", "answer"} for row in data["retain"]["qa"])
    probes = data["probes"]
    assert 6 <= len(probes["forget"]) <= 10
    assert all(len(p["paraphrases"]) >= 2 for p in probes["forget"])
    assert 5 <= len(probes["neighbour"]) <= 8
    assert len(probes["general"]) == 5
    assert load_request(EXAMPLES / name).id == data["id"]  # passes full validation (e.g. focus within answers)


def test_example_kinds() -> None:
    kinds = [yaml.safe_load((EXAMPLES / n).read_text(encoding="utf-8"))["kind"] for n in EXAMPLE_FILES]
    assert kinds == ["copyright", "privacy", "harmful"]
