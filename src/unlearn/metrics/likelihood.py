"""Teacher-forced answer log-probabilities, in padded batches."""

from __future__ import annotations

import torch

from ..data.formatting import Example, encode_qa
from ..models.logprobs import answer_lengths, sequence_logprob
from ..models.scoring import batch_logits, can_share_prompts, plan_openings, score_plan


@torch.no_grad()
def example_logprobs(model, examples: list[Example], pad_id: int, batch_size: int = 16,
                     progress: str | None = None) -> list[tuple[float, int]]:
    """(sum of answer-token log-probs, number of answer tokens) for each example; examples that share their
    prompt are scored on one computation of it (`models.scoring.score_plan`)."""
    from tqdm.auto import tqdm

    out: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    plan = score_plan(examples, batch_size, can_share_prompts(model))
    openings = plan_openings(model, examples, plan)
    for batch in tqdm(plan, desc=progress or "", disable=progress is None or len(plan) < 2, leave=False):
        rows, logits, labels, _ = batch_logits(model, examples, batch, pad_id, openings)
        for r, total, length in zip(rows, sequence_logprob(logits, labels).tolist(), answer_lengths(labels).tolist(),
                                    strict=True):
            out[r] = (total, length)
    return out


def qa_mean_logprobs(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = 16, max_length: int = 256) -> list[float]:
    """Length-normalised log p(answer | question) per pair: (1/|y|) sum_t log p(y_t | x, y_<t)."""
    examples = [encode_qa(tokenizer, q, a, max_length) for q, a in pairs]
    return [s / max(n, 1) for s, n in example_logprobs(model, examples, tokenizer.pad_token_id, batch_size)]
