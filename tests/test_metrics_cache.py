"""The shared answer-statistics cache: batched results equal one-at-a-time ones; each pair runs once."""

from __future__ import annotations

import math

import pytest
import torch

from unlearn.data.collate import collate
from unlearn.data.formatting import encode_qa
from unlearn.metrics.cache import AnswerStatsCache
from unlearn.metrics.memorization import greedy_matches
from unlearn.models.logprobs import answer_lengths, sequence_logprob

PAIRS = [("Where?", "In Oslo."), ("Who wrote it?", "A long answer with many more tokens."), ("Why?", "No.")]


def single(model, tokenizer, question, answer):
    batch = collate([encode_qa(tokenizer, question, answer, 512)], tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    n = int(answer_lengths(batch["labels"])[0])
    return -float(sequence_logprob(logits, batch["labels"])[0]) / n, n, greedy_matches(logits, batch["labels"])[0]


def test_batched_stats_equal_single_example_stats(tiny_model, tokenizer):
    cache = AnswerStatsCache(tiny_model, tokenizer, batch_size=2)
    for stats, (q, a) in zip(cache.get(PAIRS), PAIRS, strict=True):
        avg, n, matches = single(tiny_model, tokenizer, q, a)
        assert stats.avg_loss == pytest.approx(avg, abs=1e-5) and stats.n_tokens == n
        assert list(stats.matches) == matches and len(matches) == n - 1


def test_each_pair_is_computed_once(tiny_model, tokenizer):
    calls = []
    handle = tiny_model.register_forward_hook(lambda module, args, out: calls.append(1))
    try:
        cache = AnswerStatsCache(tiny_model, tokenizer, batch_size=8)
        cache.get(PAIRS + PAIRS[:1])
        first = len(calls)
        losses = cache.avg_losses(PAIRS[::-1])
    finally:
        handle.remove()
    assert first >= 1 and len(calls) == first and len(cache) == 3  # the second question asks for nothing new
    distinct = sum(len(encode_qa(tokenizer, q, a, 512).input_ids) for q, a in PAIRS)
    assert 0 < cache.tokens_scored <= distinct  # the repeated pair is not computed twice
    assert all(math.isfinite(x) and x > 0 for x in losses)


def test_mia_scores_come_from_the_same_pass(tiny_model, tokenizer):
    from unlearn.metrics.mia import loss_scores, min_k_scores

    cache = AnswerStatsCache(tiny_model, tokenizer, batch_size=2, mia_scores=True)
    stats = cache.get(PAIRS)
    for s, (q, a) in zip(stats, PAIRS, strict=True):
        batch = collate([encode_qa(tokenizer, q, a, 512)], tokenizer.pad_token_id)
        with torch.no_grad():
            logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        assert s.mia_score("loss") == pytest.approx(float(loss_scores(logits, batch["labels"])[0]), abs=1e-5)
        assert s.mia_score("loss") == pytest.approx(s.avg_loss, abs=1e-6)
        assert s.mia_score("min_k") == pytest.approx(float(min_k_scores(logits, batch["labels"])[0]), abs=1e-5)
    plain = AnswerStatsCache(tiny_model, tokenizer)
    with pytest.raises(KeyError, match="mia_scores=True"):
        plain.get(PAIRS[:1])[0].mia_score("zlib")
    assert plain.get(PAIRS[:1], mia=True)[0].mia_score("zlib") == pytest.approx(stats[0].mia_score("zlib"), abs=1e-6)
