"""Logits of the scored positions only: same values as the full forward pass, fewer positions."""

import torch

from unlearn.data.collate import collate
from unlearn.data.formatting import encode_qa
from unlearn.models.logprobs import IGNORE, nll, sequence_logprob
from unlearn.models.scoring import accepts_logits_to_keep, first_scored_position, scored_logits


def test_first_scored_position_is_one_before_the_earliest_answer_token():
    labels = torch.tensor([[IGNORE, IGNORE, IGNORE, 5, 6], [IGNORE, IGNORE, 7, 8, IGNORE]])
    assert first_scored_position(labels) == 1
    assert first_scored_position(torch.tensor([[3, 4, 5]])) == 0
    assert first_scored_position(torch.full((2, 4), IGNORE)) == 3


def _batch(tokenizer):
    pairs = [("Who wrote it?", "Ann"), ("A much longer question about the book?", "Bob wrote it in 1990")]
    return collate([encode_qa(tokenizer, q, a, 128) for q, a in pairs], tokenizer.pad_token_id)


def test_scored_logits_match_the_full_forward_pass(tiny_model, tokenizer):
    assert accepts_logits_to_keep(tiny_model)
    batch = _batch(tokenizer)
    start = first_scored_position(batch["labels"])
    assert start > 0  # the prompt is long enough for positions to be skipped
    logits, labels = scored_logits(tiny_model, batch)
    full = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape[1] == batch["labels"].shape[1] - start
    torch.testing.assert_close(logits, full[:, start:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sequence_logprob(logits, labels), sequence_logprob(full, batch["labels"]))
    torch.testing.assert_close(nll(logits, labels), nll(full, batch["labels"]))


class _NoKeep(torch.nn.Module):
    """A causal LM whose forward has no `logits_to_keep`: computed in full, then cut."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_models_without_logits_to_keep_are_cut_after_the_forward_pass(tiny_model, tokenizer):
    wrapped = _NoKeep(tiny_model)
    assert not accepts_logits_to_keep(wrapped)
    batch = _batch(tokenizer)
    logits, labels = scored_logits(wrapped, batch)
    expected, expected_labels = scored_logits(tiny_model, batch)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(labels, expected_labels)
