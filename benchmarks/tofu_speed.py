"""Speed of the likelihood metrics against a bare batched forward pass, and of the whole TOFU suite.

    python benchmarks/tofu_speed.py [--model default] [--authors 20] [--percent 10] [--batch-size 16]

1. Bare forward: every (question, answer) pair the TOFU suite scores, encoded and batched exactly as the
   engine does (length-sorted padded batches), through `model(...)` and nothing else.
2. Engine: the same pairs through `AnswerStatsCache` (average loss and greedy matches per pair; the MIA
   scores, needed only on forget and holdout, are left out here). The ratio of the two token rates is
   the engine's overhead.
3. The whole suite: `evaluate_tofu` on the mini splits (likelihoods, greedy generations for ROUGE, MIA),
   wall time.
"""

from __future__ import annotations

import argparse
import time

import torch

from unlearn.benchmarks.tofu import evaluate_tofu
from unlearn.benchmarks.tofu_data import mini_authors
from unlearn.data.collate import collate
from unlearn.data.formatting import encode_qa
from unlearn.metrics.cache import AnswerStatsCache
from unlearn.models.loading import load_model


def suite_pairs(splits) -> list[tuple[str, str]]:
    """Every distinct (question, answer) pair whose likelihood the TOFU suite needs."""
    pairs = []
    for r in splits.forget_perturbed + splits.retain_perturbed:
        pairs += [(r.question, r.answer), (r.question, r.paraphrased_answer)]
        pairs += [(r.question, w) for w in r.perturbed_answer]
    for r in splits.real_authors + splits.world_facts:
        pairs += [(r.question, r.answer)] + [(r.question, w) for w in r.perturbed_answer]
    pairs += [(r.question, r.answer) for r in splits.forget + splits.holdout]
    return list(dict.fromkeys(pairs))


@torch.no_grad()
def bare_forward(model, tokenizer, pairs, batch_size: int) -> tuple[float, int]:
    examples = [encode_qa(tokenizer, q, a, 512) for q, a in pairs]
    examples.sort(key=lambda e: len(e.input_ids))
    tokens = 0
    start = time.perf_counter()
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i : i + batch_size], tokenizer.pad_token_id)
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        tokens += int(batch["attention_mask"].sum())
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--authors", type=int, default=20)
    parser.add_argument("--percent", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    model, tokenizer = load_model(args.model)
    splits = mini_authors(args.authors, args.percent)
    pairs = suite_pairs(splits)
    bare_seconds, bare_tokens = bare_forward(model, tokenizer, pairs, args.batch_size)
    cache = AnswerStatsCache(model, tokenizer, batch_size=args.batch_size)
    start = time.perf_counter()
    cache.get(pairs)
    engine_seconds = time.perf_counter() - start
    bare_rate, engine_rate = bare_tokens / bare_seconds, cache.tokens_scored / engine_seconds
    print(f"{len(pairs)} pairs, {bare_tokens} tokens (padding excluded)")
    print(f"bare forward     {bare_seconds:7.1f} s  {bare_rate:7.0f} tokens/s")
    print(f"engine           {engine_seconds:7.1f} s  {engine_rate:7.0f} tokens/s  ({engine_rate / bare_rate:.2f} of bare)")
    start = time.perf_counter()
    result = evaluate_tofu(model, tokenizer, splits, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                           progress=False)
    print(f"whole TOFU suite {time.perf_counter() - start:7.1f} s  (sizes {result.details['sizes']})")


if __name__ == "__main__":
    main()
