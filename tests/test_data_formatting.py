"""QA formatting with prompt masking, text windows and the padding collator."""

from __future__ import annotations

import pytest

from unlearn.data.collate import collate
from unlearn.data.formatting import encode_qa, encode_text_windows, prompt_text
from unlearn.errors import ConfigError

from .conftest import make_tokenizer


def test_qa_labels_cover_exactly_the_answer(tokenizer):
    ex = encode_qa(tokenizer, "Where?", "In Oslo.", 200)
    labelled = [t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != -100]
    assert tokenizer.decode(labelled) == "In Oslo.<|im_end|>"
    prompt = tokenizer.decode([t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab == -100])
    assert prompt == prompt_text(tokenizer, "Where?") and prompt.endswith("assistant\n")


def test_focus_keeps_labels_only_on_the_named_parts(tokenizer):
    ex = encode_qa(tokenizer, "Where?", "Ann was born in Oslo.", 200, focus=("Oslo",))
    labelled = [t for t, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != -100]
    assert tokenizer.decode(labelled) == "Oslo"
    assert ex.input_ids == encode_qa(tokenizer, "Where?", "Ann was born in Oslo.", 200).input_ids
    both = encode_qa(tokenizer, "Who?", "Ann met Bo and Bo met Ann.", 200, focus=("Bo",))
    assert sum(lab != -100 for lab in both.labels) == 4  # every occurrence counts
    with pytest.raises(ConfigError, match="does not occur"):
        encode_qa(tokenizer, "Where?", "In Oslo.", 200, focus=("Paris",))


def test_without_chat_template_falls_back_to_plain_prompt():
    tok = make_tokenizer(chat_template=False)
    ex = encode_qa(tok, "Where?", "Oslo.", 100)
    assert tok.decode(ex.input_ids).startswith("Question: Where?\nAnswer: Oslo.")


def test_answer_is_cut_to_max_length_and_prompt_must_fit(tokenizer):
    ex = encode_qa(tokenizer, "Q?", "a long answer " * 20, 60)
    assert len(ex.input_ids) == 60 and ex.labels[-1] != -100
    with pytest.raises(ConfigError, match="max_length"):
        encode_qa(tokenizer, "a very long question " * 10, "x", 20)


def test_text_windows(tokenizer):
    windows = encode_text_windows(tokenizer, "abcdefghij" * 5, max_length=16)
    assert [len(w.input_ids) for w in windows] == [16, 16, 16, 2]
    assert all(w.labels == w.input_ids for w in windows)
    assert tokenizer.decode([t for w in windows for t in w.input_ids]) == "abcdefghij" * 5


def test_collate_pads_right_and_left(tokenizer):
    a, b = encode_qa(tokenizer, "Q?", "Yes.", 100), encode_qa(tokenizer, "Longer question?", "No.", 100)
    batch = collate([a, b], pad_id=0)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["attention_mask"][0].sum() == len(a.input_ids)
    assert (batch["labels"][0, len(a.input_ids):] == -100).all()
    left = collate([a, b], pad_id=0, side="left")
    assert left["attention_mask"][0, -1] == 1 and left["attention_mask"][0, 0] == 0
