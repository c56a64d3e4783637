"""Teacher-forced answer log-probabilities, in padded batches."""

from __future__ import annotations

import torch

from ..data.collate import collate, to_device
from ..data.formatting import Example, encode_qa
from ..models.logprobs import answer_lengths, sequence_logprob
from ..models.scoring import scored_logits


@torch.no_grad()
def example_logprobs(model, examples: list[Example], pad_id: int, batch_size: int = 16) -> list[tuple[float, int]]:
    """(sum of answer-token log-probs, number of answer tokens) for each example."""
    device = next(model.parameters()).device
    out: list[tuple[float, int]] = []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id)
        logits, labels = scored_logits(model, to_device(batch, device))
        sums, lengths = sequence_logprob(logits, labels), answer_lengths(labels)
        out += list(zip(sums.tolist(), lengths.tolist(), strict=True))
    return out


def qa_mean_logprobs(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = 16, max_length: int = 256) -> list[float]:
    """Length-normalised log p(answer | question) per pair: (1/|y|) sum_t log p(y_t | x, y_<t)."""
    examples = [encode_qa(tokenizer, q, a, max_length) for q, a in pairs]
    return [s / max(n, 1) for s, n in example_logprobs(model, examples, tokenizer.pad_token_id, batch_size)]
