"""MMLU-format multiple-choice accuracy: prompt format, option log-likelihoods, known answers."""

from __future__ import annotations

import math

import pytest

from unlearn.data.formatting import Example
from unlearn.errors import ConfigError
from unlearn.metrics.likelihood import example_logprobs
from unlearn.metrics.mcq import MCQuestion, mcq_accuracy, mmlu_prompt, option_logprobs

from .conftest import make_model, make_tokenizer

Q = MCQuestion("2 + 2 = ?", ("3", "4", "5", "6"), 1)
SHOT = MCQuestion("1 + 1 = ?", ("2", "3", "4", "5"), 0)


def test_prompt_format():
    assert mmlu_prompt(Q) == "2 + 2 = ?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    few = mmlu_prompt(Q, subject="elementary_mathematics", shots=[SHOT])
    assert few == ("The following are multiple choice questions (with answers) about elementary mathematics.\n\n"
                   "1 + 1 = ?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer: A\n\n"
                   "2 + 2 = ?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:")
    with pytest.raises(ConfigError, match="at most 4"):
        mmlu_prompt(MCQuestion("?", tuple("abcde"), 0))


def reference_scores(model, tokenizer, prompt: str) -> list[float]:
    """One sequence per option, scored on the continuation tokens only."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    out = []
    for letter in "ABCD":
        c = tokenizer(f" {letter}", add_special_tokens=False)["input_ids"]
        out.append(example_logprobs(model, [Example(tuple(p + c), tuple([-100] * len(p) + c))], 0)[0][0])
    return out


@pytest.mark.parametrize("single_token_letters", [False, True])
def test_option_logprobs_equal_one_sequence_per_option(single_token_letters):
    tok = make_tokenizer()
    if single_token_letters:
        tok.add_tokens([" A", " B", " C", " D"])
        assert len(tok(" A", add_special_tokens=False)["input_ids"]) == 1
    model = make_model(len(tok))
    prompts = [mmlu_prompt(Q), mmlu_prompt(Q, shots=[SHOT]), "short?"]
    got = option_logprobs(model, tok, prompts, [4, 4, 4], batch_size=2)
    for row, prompt in zip(got, prompts, strict=True):
        assert row == pytest.approx(reference_scores(model, tok, prompt), abs=1e-4)


def test_accuracy_known_answers():
    rows = [[-1.0, -0.5, -3.0, -2.0], [-0.1, -0.2, -0.3, -0.4], [-2.0, -2.0, -1.0, -2.0]]
    # picks: B (1), A (0), C (2); gold 1, 1, 2 -> 2 of 3
    assert mcq_accuracy(rows, [1, 1, 2]).value == pytest.approx(2 / 3)
    nan = mcq_accuracy([[float("nan"), -1.0]], [1])
    assert math.isnan(nan.value) and nan.n_nan == 1
    with pytest.raises(ConfigError, match="2 score rows for 1 answers"):
        mcq_accuracy(rows[:2], [0])
