"""MUSE verbatim and knowledge memorization: prompt format, answer cut, and ROUGE-L worked out by hand."""

from __future__ import annotations

import pytest

from unlearn.metrics import METRICS, muse
from unlearn.metrics.generation import Generation


def test_knowmem_prompt_format():
    prompt = muse.knowmem_prompt("Who?", [("Q1?", "A1."), ("Q2?", "A2.")])
    assert prompt == "Question: Q1?\nAnswer: A1.\n\nQuestion: Q2?\nAnswer: A2.\n\nQuestion: Who?\nAnswer: "
    assert muse.knowmem_prompt("Who?") == "Question: Who?\nAnswer: "


@pytest.mark.parametrize(
    "text, expected",
    [("Paris\n\nQuestion: next", "Paris"), ("Paris\nQuestion: x", "Paris"), ("Paris. Question: x", "Paris. "),
     ("Paris is big", "Paris is big")],
)
def test_cut_answer(text, expected):
    assert muse.cut_answer(text) == expected


def test_rouge_by_hand_and_without_stemming():
    # LCS("the cat sat", "the cat sat on the mat") = 3 words: P = 3/3, R = 3/6, F1 = 2PR/(P+R) = 2/3
    assert muse.rouge_scores(["the cat sat"], ["the cat sat on the mat"]).value == pytest.approx(2 / 3)
    assert muse.rouge_scores(["the cat sat"], ["the cat sat on the mat"], "recall").value == pytest.approx(0.5)
    # MUSE scores without stemming: "cats running" shares no word with "cat run"
    assert muse.rouge_scores(["cats running"], ["cat run"]).value == 0.0
    with pytest.raises(ValueError, match="rouge must be one of"):
        muse.rouge_scores(["a"], ["a"], "f2")
    with pytest.raises(ValueError, match="1 generations for 2 references"):
        muse.rouge_scores(["a"], ["a", "b"])


def test_split_prefix_by_tokens(tokenizer):
    # the test tokenizer has one token per character
    assert muse.split_prefix(tokenizer, ["abcdefgh", "ab"], prefix_tokens=3, continuation_tokens=4) == [
        ("abc", "defg")]


def fake_generate(texts):
    """Generation i has the single token id i, which FakeTokenizer decodes to texts[i]."""

    def generate(model, tokenizer, questions, batch_size, max_new_tokens, prompts=None, progress=None):
        assert len(prompts) == len(texts)
        fake_generate.prompts = prompts
        return [Generation(t.strip(), [i], []) for i, t in enumerate(texts)]

    return generate


class FakeTokenizer:
    def __init__(self, texts):
        self.texts = texts

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.texts[i] for i in ids)


def test_knowledge_memorization_cuts_then_scores(monkeypatch):
    texts = ["Oslo\n\nQuestion: more", "in the north", "\n\nOslo"]
    monkeypatch.setattr(muse, "generate_answers", fake_generate(texts))
    result = muse.knowledge_memorization(None, FakeTokenizer(texts), ["Where?", "Which part?", "Where?"],
                                         ["Oslo", "the south", "Oslo"], shots=[("Q?", "A.")])
    # "Oslo" vs "Oslo": 1; "in the north" vs "the south": LCS 1 ("the"), P = 1/3, R = 1/2, F1 = 0.4;
    # an answer opening with a blank line is cut to nothing: 0
    assert result.per_example == pytest.approx([1.0, 0.4, 0.0])
    assert result.value == pytest.approx(1.4 / 3)
    assert fake_generate.prompts[0].startswith("Question: Q?\nAnswer: A.\n\nQuestion: Where?")


def test_verbatim_memorization_scores_continuations(monkeypatch):
    monkeypatch.setattr(muse, "generate_answers", fake_generate(["sat on the mat", "flew away"]))
    result = muse.verbatim_memorization(None, None, ["the cat", "the bird"], ["sat on the mat", "sang"])
    assert result.per_example == pytest.approx([1.0, 0.0])


def test_registered_direction_is_on_data_to_keep_and_inputs_are_declared():
    for name in ("verbmem_rouge", "knowmem_rouge"):  # the knowledge measured; a forget use reverses it
        assert METRICS.get(name).higher_is_better is True
    assert METRICS.get("verbmem_rouge").inputs == ("model", "tokenizer", "prompts", "continuations")
    assert METRICS.get("probe_accuracy").inputs == ("generations", "answers")


def test_real_generation_path(tiny_model, tokenizer):
    result = muse.verbatim_memorization(tiny_model, tokenizer, ["abc", "de"], ["fgh", "ijk"], max_new_tokens=3)
    assert len(result.per_example) == 2 and all(0.0 <= v <= 1.0 for v in result.per_example)
