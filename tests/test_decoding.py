"""Greedy decoding with a shared prompt prefix and finished rows dropped gives `generate`'s greedy answers."""

from __future__ import annotations

import pytest
import torch

from unlearn.data.formatting import prompt_text
from unlearn.models.decoding import common_prefix, greedy_decode, plain_greedy

QUESTIONS = ["Who wrote it?", "Where?", "A much longer question about where the book was written?", "Why not?",
             "When was Ada Quill born, and where?"]


def _reference(model, prompts, max_new_tokens, eos, pad_id):
    """One unpadded `generate` call per prompt: greedy tokens up to and including the first end token."""
    out = []
    for ids in prompts:
        generated = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                   max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id,
                                   eos_token_id=sorted(eos), output_logits=True, return_dict_in_generate=True)
        tokens = generated.sequences[0, len(ids):].tolist()
        end = next((k + 1 for k, t in enumerate(tokens) if t in eos), len(tokens))
        out.append((tokens[:end], generated.logits))
    return out


@pytest.fixture()
def varied_model(tiny_model):
    """The tiny model with large random weights: its greedy answers vary from token to token and row to row."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in tiny_model.parameters():
            parameter.normal_(0, 0.5)
    return tiny_model


def test_common_prefix_leaves_every_sequence_a_token_of_its_own():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == [1, 2]
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == [1, 2]  # identical: the last token stays with each
    assert common_prefix([[1, 2, 3]]) == [1, 2]
    assert common_prefix([[7], [7, 8]]) == []
    assert common_prefix([]) == []


def test_greedy_decode_gives_generate_s_tokens_and_entropies(varied_model, tokenizer):
    from unlearn.models.logprobs import token_entropy

    prompts = [tokenizer(prompt_text(tokenizer, q), add_special_tokens=False)["input_ids"] for q in QUESTIONS]
    assert len(common_prefix(prompts)) > 5  # the chat template's opening is shared
    with torch.no_grad():
        free = _reference(varied_model, prompts, 12, {tokenizer.eos_token_id}, tokenizer.pad_token_id)
    # an end token that some answers emit part-way, so that rows finish at different steps
    eos = {free[0][0][2]}
    with torch.no_grad():
        expected = _reference(varied_model, prompts, 12, eos, tokenizer.pad_token_id)
    lengths = {len(tokens) for tokens, _ in expected}
    assert len(lengths) > 1 and 12 in lengths  # some stopped early, some ran to the limit
    for batch_size in (2, 8):
        decoded = greedy_decode(varied_model, prompts, 12, eos, tokenizer.pad_token_id, batch_size=batch_size)
        for (tokens, entropies), (want, logits) in zip(decoded, expected, strict=True):
            assert tokens == want
            want_entropy = [float(token_entropy(step[0])) for step in logits[: len(want)]]
            assert entropies == pytest.approx(want_entropy, abs=1e-4)


def test_generate_answers_take_the_fast_path_only_for_plain_models(varied_model, tokenizer, monkeypatch):
    import unlearn.metrics.generation as generation

    fast = generation.generate_answers(varied_model, tokenizer, QUESTIONS, batch_size=2, max_new_tokens=10)
    monkeypatch.setattr(generation, "plain_greedy", lambda model: False)
    slow = generation.generate_answers(varied_model, tokenizer, QUESTIONS, batch_size=2, max_new_tokens=10)
    assert [g.token_ids for g in fast] == [g.token_ids for g in slow]
    assert [g.text for g in fast] == [g.text for g in slow]
    for a, b in zip(fast, slow, strict=True):
        assert a.entropies == pytest.approx(b.entropies, abs=1e-4)


def test_plain_greedy_refuses_logits_processors_and_wrappers(tiny_model):
    assert plain_greedy(tiny_model)
    tiny_model.generation_config.repetition_penalty = 1.3
    assert not plain_greedy(tiny_model)
    tiny_model.generation_config.repetition_penalty = 1.0
    tiny_model.generation_config.no_repeat_ngram_size = 2
    assert not plain_greedy(tiny_model)
    tiny_model.generation_config.no_repeat_ngram_size = 0
    assert plain_greedy(tiny_model)

    class Wrapper(torch.nn.Module):  # a model with its own generate (a guard) keeps it
        def generate(self, **kwargs):
            raise AssertionError

    assert not plain_greedy(Wrapper())


def test_greedy_decode_rejects_an_empty_prompt_and_allows_no_new_tokens(tiny_model):
    with pytest.raises(ValueError, match="empty prompt"):
        greedy_decode(tiny_model, [[5, 6], []], 4, {3}, 0)
    assert greedy_decode(tiny_model, [[5, 6]], 0, {3}, 0) == [([], [])]


def test_nucleus_logits_keep_the_smallest_set_over_top_p():
    from unlearn.models.decoding import nucleus_logits

    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = nucleus_logits(logits, 1.0, 0.7)  # 0.05 and 0.15 (together 0.2 <= 0.3) go; 0.3 and 0.5 stay
    assert torch.isinf(kept[0, 2:]).all() and torch.isfinite(kept[0, :2]).all()
    assert kept[0, :2].softmax(-1).tolist() == pytest.approx([0.5 / 0.8, 0.3 / 0.8])
    assert torch.equal(nucleus_logits(logits, 2.0, 1.0), logits / 2.0)  # temperature only
    only_top = nucleus_logits(logits, 1.0, 0.01)
    assert torch.isfinite(only_top).tolist() == [[True, False, False, False]]  # the most likely always stays


def test_sample_decode_is_seeded_draws_from_the_model_and_leaves_the_global_state(varied_model, tokenizer):
    from unlearn.models.decoding import sample_decode

    prompts = [tokenizer(prompt_text(tokenizer, q), add_special_tokens=False)["input_ids"] for q in QUESTIONS[:3]]
    state = torch.random.get_rng_state()
    first = sample_decode(varied_model, prompts, 4, 6, {3}, tokenizer.pad_token_id, seed=7, batch_size=8)
    assert torch.equal(state, torch.random.get_rng_state())
    assert [len(row) for row in first] == [4, 4, 4]
    assert all(len(s) == 6 or (0 < len(s) < 6 and s[-1] == 3 and 3 not in s[:-1]) for row in first for s in row)
    assert first == sample_decode(varied_model, prompts, 4, 6, {3}, tokenizer.pad_token_id, seed=7, batch_size=8)
    assert first != sample_decode(varied_model, prompts, 4, 6, {3}, tokenizer.pad_token_id, seed=8, batch_size=8)
    # near zero temperature: every draw is the greedy answer
    greedy = greedy_decode(varied_model, prompts, 6, {3}, tokenizer.pad_token_id)
    cold = sample_decode(varied_model, prompts, 2, 6, {3}, tokenizer.pad_token_id, temperature=1e-4, batch_size=2)
    assert cold == [[tokens, tokens] for tokens, _ in greedy]
    # the first token's frequencies over many draws follow the model's next-token distribution
    with torch.no_grad():
        probs = varied_model(input_ids=torch.tensor([prompts[0]])).logits[0, -1].softmax(-1)
    draws = sample_decode(varied_model, prompts[:1], 3000, 1, {3}, tokenizer.pad_token_id, seed=1, batch_size=3000)
    counts = torch.bincount(torch.tensor([s[0] for s in draws[0]]), minlength=len(probs)).float() / 3000
    likely = probs > 0.02
    assert likely.sum() >= 5  # a spread-out distribution, so that a wrong sampler would show
    spread = 4 * (probs * (1 - probs) / 3000).sqrt()  # four standard deviations of a frequency
    assert ((counts - probs).abs()[likely] < spread[likely]).all()


def test_sample_answers_fall_back_to_generate_for_other_models(varied_model, tokenizer, monkeypatch):
    import unlearn.metrics.generation as generation

    prompts = [prompt_text(tokenizer, q) for q in QUESTIONS[:2]]
    greedy = [g.text for g in generation.generate_answers(varied_model, tokenizer, QUESTIONS[:2], max_new_tokens=5)]
    fast = generation.sample_answers(varied_model, tokenizer, prompts, 2, temperature=1e-4, max_new_tokens=5)
    monkeypatch.setattr(generation, "plain_sampling", lambda model: False)
    slow = generation.sample_answers(varied_model, tokenizer, prompts, 2, temperature=1e-4, max_new_tokens=5)
    assert fast == slow == [[text, text] for text in greedy]
