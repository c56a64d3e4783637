"""Logits of the scored positions only: same values as the full forward pass, fewer positions."""

import pytest
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


def _shared_examples(tokenizer):
    """Two questions with three answers each, one question alone, and a plain-text continuation."""
    from unlearn.metrics.knowledge import encode_continuation

    pairs = [("Who wrote it?", a) for a in ("Ann", "Bob wrote it in 1990", "Cy")]
    pairs += [("A much longer question about where the book was written?", a) for a in ("Oslo", "Lima, in a cafe", "Rome")]
    pairs += [("Alone?", "Yes")]
    pairs += [("Where was Ada born?", f"Ada was born in {city}.") for city in ("Oslo", "Lima")]
    examples = [encode_qa(tokenizer, q, a, 128) for q, a in pairs]
    return examples + [encode_continuation(tokenizer, "Ada Quill was born in", " Oslo.", 128)]


def test_pack_prefix_groups_shares_each_prompt_and_keeps_batches_small(tokenizer):
    from unlearn.models.scoring import first_label, pack_prefix_groups

    examples = _shared_examples(tokenizer)
    batches = pack_prefix_groups(examples, batch_size=4)
    groups = [members for batch in batches for _, members in batch]
    assert sorted(i for members in groups for i in members) == list(range(len(examples)))
    assert [0, 1, 2] in groups and [3, 4, 5] in groups and [6] in groups and [7, 8] in groups and [9] in groups
    ada = next(prefix for batch in batches for prefix, members in batch if members == [7, 8])
    prompt = examples[7].input_ids[: first_label(examples[7].labels)]
    # the answers' common opening ("Ada was born in ") is shared with the prompt, up to the first other token
    assert len(ada) > len(prompt) and ada == examples[8].input_ids[: len(ada)]
    assert examples[7].input_ids[len(ada)] != examples[8].input_ids[len(ada)]
    assert all(sum(len(m) for _, m in batch) <= 4 for batch in batches)
    split = pack_prefix_groups(examples, batch_size=2)  # a group larger than a batch is split
    assert all(sum(len(m) for _, m in batch) <= 2 for batch in split)
    assert sorted(i for batch in split for _, m in batch for i in m) == list(range(len(examples)))


def test_prefix_shared_logits_give_the_log_probabilities_of_a_full_forward_pass(tiny_model, tokenizer):
    from unlearn.models.logprobs import answer_lengths, token_logprobs
    from unlearn.models.scoring import pack_prefix_groups, plan_openings, prefix_shared_logits

    examples = _shared_examples(tokenizer)
    expected = {}
    for i, e in enumerate(examples):  # one unpadded sequence at a time
        batch = collate([e], tokenizer.pad_token_id)
        full = tiny_model(input_ids=batch["input_ids"]).logits
        logp, mask = token_logprobs(full, batch["labels"])
        expected[i] = logp[mask]
    chats = [i for i, e in enumerate(examples) if e.input_ids[0] == examples[0].input_ids[0]]
    plan = pack_prefix_groups(examples, batch_size=4)
    chat_plan = pack_prefix_groups([examples[i] for i in chats], batch_size=4)
    openings = plan_openings(tiny_model, [examples[i] for i in chats], chat_plan)
    assert len(openings) == 1 and len(next(iter(openings.values())).tokens) > 5  # the chat template's opening turn
    opening = next(iter(openings.values()))
    every = plan_openings(tiny_model, examples, plan)  # the plain-text example opens a family of its own
    assert len(every) == 2 and every[opening.tokens[0]].tokens == opening.tokens
    assert not plan_openings(tiny_model, examples, [[(None, [0, 1])]])  # nothing shared, nothing opened
    for subset, batches, shared in ((list(range(len(examples))), plan, None), (chats, chat_plan, opening)):
        computed_tokens = 0
        seen = []
        with torch.no_grad():
            for chunks in batches:
                rows, logits, labels, computed = prefix_shared_logits(
                    tiny_model, [examples[i] for i in subset], chunks, tokenizer.pad_token_id, shared)
                computed_tokens += computed
                logp, mask = token_logprobs(logits, labels)
                for r, i in enumerate(rows):
                    torch.testing.assert_close(logp[r][mask[r]], expected[subset[i]], rtol=1e-4, atol=1e-4)
                    assert int(answer_lengths(labels)[r]) == len(expected[subset[i]])
                seen += rows
        assert sorted(seen) == list(range(len(subset)))
        # each prompt computed once: fewer tokens than the examples hold
        assert computed_tokens < sum(len(examples[i].input_ids) for i in subset)


def test_example_logprobs_are_the_same_whether_prompts_are_shared_or_not(tiny_model, tokenizer):
    from unlearn.metrics.likelihood import example_logprobs
    from unlearn.models.scoring import can_share_prompts, score_plan

    examples = _shared_examples(tokenizer)
    assert can_share_prompts(tiny_model) and not can_share_prompts(_NoKeep(tiny_model))
    assert score_plan(examples, 4)[0][0][0] is not None  # shared
    assert all(chunk[0] is None for batch in score_plan(examples, 4, share_prefix=False) for chunk in batch)
    from unlearn.metrics.knowledge import encode_continuation

    distinct = [encode_continuation(tokenizer, p, " Oslo.", 128) for p in ("Ann was born in", "Bob lives in")]
    assert all(chunk[0] is None for batch in score_plan(distinct, 4) for chunk in batch)  # nothing to share
    chats = [encode_qa(tokenizer, q, "Ann", 128) for q in ("Who?", "Where?", "When?")]
    assert all(chunk[0] is not None for batch in score_plan(chats, 4) for chunk in batch)  # the chat turn opens all
    alone = example_logprobs(tiny_model, chats, tokenizer.pad_token_id, batch_size=2)
    for (a, n), (b, m) in zip(alone, example_logprobs(_NoKeep(tiny_model), chats, tokenizer.pad_token_id, 2), strict=True):
        assert n == m > 0 and a == pytest.approx(b, abs=1e-4)
    from unlearn.data.formatting import Example

    unscored = Example(examples[0].input_ids, (IGNORE,) * len(examples[0].input_ids))  # no counted token
    assert all(chunk[0] is None for batch in score_plan([*examples, unscored], 4) for chunk in batch)
    shared = example_logprobs(tiny_model, examples, tokenizer.pad_token_id, batch_size=4)
    whole = example_logprobs(_NoKeep(tiny_model), examples, tokenizer.pad_token_id, batch_size=4)
    assert [n for _, n in shared] == [n for _, n in whole] and all(n > 0 for _, n in shared)
    for (a, _), (b, _) in zip(shared, whole, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
