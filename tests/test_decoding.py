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
