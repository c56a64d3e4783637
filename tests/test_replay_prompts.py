"""Checks for the self-distillation replay prompts."""

from __future__ import annotations

import re
import string

from unlearn.data.general import general_knowledge
from unlearn.data.replay_prompts import REPLAY_PROMPTS, replay_prompts

# Distinctive subjects of the held-out questions: asking about them again, even in other words,
# would leak the evaluation facts into training.
_HELD_OUT_SUBJECTS = (
    "penicillin",
    "telephone",
    "light bulb",
    "mona lisa",
    "relativity",
    "romeo",
    "shakespeare",
    "einstein",
    "newton",
    "darwin",
    "beethoven",
    "armstrong",
    "george washington",
    "eiffel",
    "colosseum",
    "great wall",
    "statue of liberty",
    "taj mahal",
    "machu picchu",
    "sydney opera",
    "golden gate",
    "mount fuji",
    "everest",
    "sahara",
    "nile",
    "red planet",
    "photosynthesis",
    "wimbledon",
    "touchdown",
    "omelette",
    "kangaroo",
    "seine",
    "capital of france",
    "capital of japan",
    "capital of germany",
    "capital of italy",
    "capital of spain",
    "capital of the united kingdom",
    "capital of russia",
    "capital of china",
    "capital of egypt",
    "capital of canada",
    "capital of australia",
    "capital of greece",
    "capital of india",
    "capital of austria",
)


def _norm(text: str) -> str:
    text = "".join(" " if ch in string.punctuation else ch for ch in text.lower())
    return " ".join(text.split())


def test_replay_prompts_count_and_type() -> None:
    prompts = replay_prompts()
    assert isinstance(prompts, list)
    assert prompts == list(REPLAY_PROMPTS)
    assert len(prompts) >= 250
    assert all(isinstance(p, str) for p in prompts)


def test_replay_prompts_returns_fresh_list() -> None:
    first = replay_prompts()
    first.append("extra")
    assert "extra" not in replay_prompts()


def test_replay_prompts_no_duplicates() -> None:
    assert len(set(REPLAY_PROMPTS)) == len(REPLAY_PROMPTS)
    normed = [_norm(p) for p in REPLAY_PROMPTS]
    assert len(set(normed)) == len(normed)


def test_replay_prompts_shape() -> None:
    for prompt in REPLAY_PROMPTS:
        assert prompt == prompt.strip(), prompt
        assert 0 < len(prompt) < 120, prompt
        assert "\n" not in prompt and "\r" not in prompt, prompt
        assert prompt.isprintable(), prompt


def test_replay_prompts_disjoint_from_general_questions() -> None:
    held_out = {_norm(item.question) for item in general_knowledge()}
    assert len(held_out) == len(general_knowledge())
    overlap = [p for p in REPLAY_PROMPTS if _norm(p) in held_out]
    assert not overlap, overlap


def test_replay_prompts_avoid_held_out_subjects() -> None:
    hits = [
        (p, subject)
        for p in REPLAY_PROMPTS
        for subject in _HELD_OUT_SUBJECTS
        if re.search(rf"\b{re.escape(subject)}\b", _norm(p))
    ]
    assert not hits, hits
