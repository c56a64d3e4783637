"""CATNIP and DTO: their losses on values worked out by hand, DTO's token selection on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from unlearn.errors import ConfigError
from unlearn.methods import make_method
from unlearn.methods.base import StepBatch
from unlearn.methods.catnip import catnip_loss
from unlearn.methods.dto import answer_region, split_prefix_suffix, suffix_nll_with_blanks, top_targets
from unlearn.models.reference import Reference

LN2, LN3, LN5, LN13 = math.log(2), math.log(3), math.log(5), math.log(13)
X = -100


def close(actual, expected) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), rtol=1e-6, atol=1e-6)


def answer_logp():
    # two answer tokens with p = 1/2 and 3/5, and one uncounted token that must not count
    return torch.tensor([[-LN2, LN3 - LN5, -9.0]], requires_grad=True), torch.tensor([[True, True, False]])


def test_catnip_at_beta_one_is_minus_two_log_one_minus_p_with_gradient_p():
    # l_t = -2 log sigmoid(-(log p - log(1-p))) = -2 log(1 - p): (2 ln 2 + 2 (ln 5 - ln 2)) / 2 = ln 5
    logp, mask = answer_logp()
    loss = catnip_loss(logp, mask, beta=1.0)
    close(loss.detach(), LN5)
    loss.backward()  # 2 p / 2 tokens, the reference held fixed
    close(logp.grad, [[0.5, 0.6, 0.0]])


def test_catnip_at_beta_two_weights_tokens_by_calibrated_confidence():
    # l_t = log(1 + (p / (1 - p))^2): ln 2 and ln(13/4); gradient 2 p^2 / (p^2 + (1-p)^2) / 2 = 1/2 and 9/13
    logp, mask = answer_logp()
    loss = catnip_loss(logp, mask, beta=2.0)
    close(loss.detach(), (LN2 + LN13 - 2 * LN2) / 2)
    loss.backward()
    close(logp.grad, [[0.5, 9 / 13, 0.0]])


def test_catnip_stays_finite_on_a_certain_token():
    logp = torch.tensor([[0.0]], requires_grad=True)
    loss = catnip_loss(logp, torch.tensor([[True]]), beta=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()


def test_prefix_and_suffix_split():
    assert split_prefix_suffix([3, 4, 5, 6, 7], 0.5) == ([3, 4, 5], [6, 7])
    assert split_prefix_suffix([3, 4, 5, 6], 0.25) == ([3, 4, 5], [6])
    assert split_prefix_suffix([3, 4], 0.9) == ([3], [4])  # the prefix keeps one token
    assert split_prefix_suffix([3, 4, 5], 0.01) == ([3, 4], [5])  # the suffix keeps one token
    assert split_prefix_suffix([3], 0.5) == ([3], [])


def test_top_targets_by_delta_score():
    assert top_targets([3, 4, 5], [0.1, 0.5, 0.5], 0.3) == [4]  # ceil(0.9) = 1; the earlier of a tie
    assert top_targets([3, 4, 5], [0.1, 0.5, 0.4], 0.5) == [4, 5]
    assert top_targets([3, 4, 5], [0.1, -0.5, 0.4], 1.0) == [3, 4, 5]
    assert top_targets([], [], 0.5) == []


def test_answer_region_runs_from_the_first_counted_label_to_the_last_attended_token():
    labels = torch.tensor([[X, X, 5, X, 6, X], [X, 7, 8, X, X, X]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]])
    assert answer_region(labels, attention).tolist() == [[False, False, True, True, True, False],
                                                         [False, True, True, False, False, False]]


def test_suffix_nll_of_the_row_as_it_is_and_with_each_prefix_token_blanked(tiny_model):
    ids = torch.tensor([2, 10, 11, 12, 13, 14, 15])
    suffix, blanks = [5, 6], [1, 3]
    nll = suffix_nll_with_blanks(tiny_model, ids, suffix, blanks)
    logp = torch.log_softmax(tiny_model(input_ids=ids.unsqueeze(0)).logits[0].float(), dim=-1)
    plain = -(logp[4, 14] + logp[5, 15]) / 2
    close(nll[0], plain.detach())
    embeds = tiny_model.get_input_embeddings()(ids.unsqueeze(0)).detach().clone()
    embeds[0, 3] = 0.0
    blanked = torch.log_softmax(tiny_model(inputs_embeds=embeds).logits[0].float(), dim=-1)
    close(nll[2], (-(blanked[4, 14] + blanked[5, 15]) / 2).detach())
    assert nll.shape == (3,) and not torch.isclose(nll[1], nll[0])


def forget_batch() -> dict[str, torch.Tensor]:
    # two rows: prompt [2, 10, 11], answers of 6 and 4 tokens; the second row right-padded
    ids = torch.tensor([[2, 10, 11, 20, 21, 22, 23, 24, 25], [2, 10, 11, 30, 31, 32, 33, 0, 0]])
    attention = (torch.arange(9) < torch.tensor([[9], [7]])).long()
    labels = ids.masked_fill(attention == 0, X).clone()
    labels[:, :3] = X
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def test_dto_picks_targets_in_each_answer_prefix_once_and_ascends_on_them_alone(tiny_model):
    method = make_method({"name": "dto", "target_ratio": 0.5, "suffix_ratio": 0.5, "kl_weight": 0.0})
    reference = Reference(tiny_model)
    method.setup(tiny_model, reference)
    batch = forget_batch()
    targets = method.target_mask(reference, batch)
    assert targets[0, :6].sum() == 2 and not targets[0, 6:].any()  # prefix 20, 21, 22: ceil(1.5) = 2 targets
    assert targets[1, :5].sum() == 1 and not targets[1, 5:].any()  # prefix 30, 31: one target
    assert not targets[:, :3].any()

    calls = []
    original = tiny_model.forward
    tiny_model.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    again = method.target_mask(reference, batch)
    tiny_model.forward = original
    assert torch.equal(again, targets) and not calls  # each example is scored once

    out = method.loss(tiny_model, StepBatch(forget=batch), reference)
    out.loss.backward()
    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = [logp[r, p - 1, batch["input_ids"][r, p]] for r, p in targets.nonzero().tolist()]
    close(out.loss.detach(), torch.stack(picked).mean().detach())


def test_dto_with_labels_selection_targets_the_focus_and_keeps_the_rest_by_kl(tiny_model):
    method = make_method({"name": "dto", "selection": "labels"})
    reference = Reference(tiny_model)
    method.setup(tiny_model, reference)
    batch = forget_batch()
    batch["labels"][0, 5:] = X  # a focus span: the first two answer tokens of row 0
    targets = method.target_mask(reference, batch)
    assert targets[0].nonzero().squeeze(-1).tolist() == [3, 4]
    out = method.loss(tiny_model, StepBatch(forget=batch), reference)
    assert out.logs["kl"] == pytest.approx(0.0, abs=1e-6)  # the model is still its reference
    assert out.logs["targets"] == 2 + 4


@pytest.mark.parametrize("settings", [{"selection": "first"}, {"target_ratio": 0.0}, {"suffix_ratio": 1.0},
                                      {"kl_weight": -1.0}])
def test_dto_refuses_bad_settings(settings):
    with pytest.raises(ConfigError):
        make_method({"name": "dto", **settings}).validate()


def test_catnip_refuses_a_non_positive_beta():
    with pytest.raises(ConfigError):
        make_method({"name": "catnip", "beta": 0.0}).validate()


def test_blanked_rows_computed_in_several_passes_give_the_same_scores(tiny_model):
    ids = torch.tensor([2, 10, 11, 12, 13, 14, 15, 16])
    whole = suffix_nll_with_blanks(tiny_model, ids, [6, 7], [1, 2, 3, 4, 5])
    in_pairs = suffix_nll_with_blanks(tiny_model, ids, [6, 7], [1, 2, 3, 4, 5], rows_per_pass=2)
    torch.testing.assert_close(in_pairs, whole, rtol=1e-5, atol=1e-5)
