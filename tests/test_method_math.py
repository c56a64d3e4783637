"""Known-answer tests of the loss methods' and log-prob helpers' pure math.

Every expected value below is worked out by hand (the arithmetic is in the comments), never by
calling the function under test or a re-implementation of it. Logits are chosen as logs of small
integers so that every softmax is a ratio of small integers:
  softmax([0, ln 2, 0]) = [1, 2, 1] / 4,   softmax([ln 3, 0, 0]) = [3, 1, 1] / 5,   etc.
"""

from __future__ import annotations

import math

import pytest
import torch

from unlearn.config import TrainConfig
from unlearn.methods.adaptive_rmu import adaptive_targets
from unlearn.methods.altpo import first_alternate, repeats_fact
from unlearn.methods.ce_u import ce_u_loss, skip_first_answer_tokens
from unlearn.methods.common import control_vector, kl_on_answers, masked_mse, spliced_batch, trim
from unlearn.methods.grad_ascent import grad_ascent_loss
from unlearn.methods.grad_diff import grad_diff_loss
from unlearn.methods.idk_dpo import dpo_loss
from unlearn.methods.idk_nll import idk_nll_loss
from unlearn.methods.ihl import inverted_hinge_loss
from unlearn.methods.llmu import llmu_loss
from unlearn.methods.lunar import last_prompt_token, prompt_mask, redirected_targets, redirection
from unlearn.methods.me_ap import answer_preservation_loss, max_entropy_loss
from unlearn.methods.meow import distinct_inversions, memo_cuts, memo_score, rouge1_precision, select_by_memo
from unlearn.methods.negmerge import consensual_mean
from unlearn.methods.ngdiff import gradient_norm, normalized_difference
from unlearn.methods.npo import npo_loss
from unlearn.methods.pdu import dual_update, logit_margin_flattening
from unlearn.methods.satimp import satimp_loss, satimp_weights
from unlearn.methods.simnpo import simnpo_loss
from unlearn.methods.task_vector import negated, task_update, without_shared
from unlearn.methods.ties import ties_merge
from unlearn.methods.undial import undial_loss
from unlearn.methods.wga import wga_loss
from unlearn.models.logprobs import (
    answer_lengths,
    mean_token_logprob,
    nll,
    sequence_logprob,
    token_entropy,
    token_logprobs,
)
from unlearn.train.loop import lr_factor, total_steps

LN2, LN3, LN4, LN5 = math.log(2), math.log(3), math.log(4), math.log(5)
X = -100  # ignored label


def close(actual: torch.Tensor, expected) -> None:
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def t(values, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


# One sequence, vocab 3, length 3.
#   row 0 = [0, ln 2, 0]  -> p = [1/4, 1/2, 1/4]
#   row 1 = [ln 3, 0, 0]  -> p = [3/5, 1/5, 1/5]
#   row 2 = [9, -9, 4]    -> predicts past the end of the sequence: never used
ROWS = [[0.0, LN2, 0.0], [LN3, 0.0, 0.0], [9.0, -9.0, 4.0]]
LOGITS = t([ROWS])
LABELS = torch.tensor([[X, 1, 0]])  # logits[0] predicts labels[1] = 1, logits[1] predicts labels[2] = 0


# ---------------------------------------------------------------- log-prob helpers


def test_token_logprobs_shift_and_values():
    logp, mask = token_logprobs(LOGITS, LABELS)
    # log p_row0(1) = ln 2 - ln 4 = -ln 2 ;  log p_row1(0) = ln 3 - ln 5
    close(logp, [[-LN2, LN3 - LN5]])
    assert mask.tolist() == [[True, True]]


def test_token_logprobs_uses_logits_t_for_label_t_plus_1():
    # vocab 2: row 0 = [0, ln 3] -> p = [1/4, 3/4]; row 1 = [0, 0] -> p = [1/2, 1/2]; row 2 unused.
    logits = t([[[0.0, LN3], [0.0, 0.0], [50.0, -50.0]]])
    labels = torch.tensor([[0, 1, 1]])  # labels[0] is never predicted (nothing precedes it)
    logp, mask = token_logprobs(logits, labels)
    # shifted: log p_row0(1) = ln(3/4), log p_row1(1) = ln(1/2). (Unshifted it would start with ln(1/4).)
    close(logp, [[LN3 - LN4, -LN2]])
    assert mask.tolist() == [[True, True]]


def test_token_logprobs_masked_positions_are_zero():
    logp, mask = token_logprobs(LOGITS, torch.tensor([[X, X, 0]]))
    # position 0 (label -100) counts 0; position 1: ln 3 - ln 5
    close(logp, [[0.0, LN3 - LN5]])
    assert mask.tolist() == [[False, True]]


def test_sequence_and_mean_token_logprob():
    # sum = -ln 2 + ln 3 - ln 5 = ln(3/10); two answer tokens -> mean ln(3/10) / 2
    close(sequence_logprob(LOGITS, LABELS), [math.log(3 / 10)])
    close(mean_token_logprob(LOGITS, LABELS), [math.log(3 / 10) / 2])


def test_mean_token_logprob_without_answer_tokens_is_zero():
    # sum over no tokens = 0, length clamped to 1 -> 0 (not NaN)
    close(mean_token_logprob(LOGITS, torch.tensor([[X, X, X]])), [0.0])


def test_answer_lengths_drop_the_first_label():
    labels = torch.tensor([[X, 1, 0, X], [X, X, 2, X], [1, 1, 1, 1], [X, X, X, X]])
    # counted labels among positions 1..3: 2, 1, 3 (labels[:, 0] is never predicted), 0
    assert answer_lengths(labels).tolist() == [2, 1, 3, 0]


def test_nll_is_a_mean_over_tokens_with_masking():
    # sequence 0 = LOGITS/LABELS: token NLLs ln 2 and ln 5 - ln 3.
    # sequence 1: row 0 = [0, 0, 0] (label -100, ignored); row 1 = [0, 0, ln 2] -> p(2) = 2/4 = 1/2,
    #             so NLL = ln 2; row 2 unused; trailing -100 is padding.
    logits = t([ROWS, [[0.0, 0.0, 0.0], [0.0, 0.0, LN2], [3.0, 1.0, 2.0]]])
    labels = torch.tensor([[X, 1, 0], [X, X, 2]])
    # mean over the 3 counted tokens (not over sequences): (ln 2 + ln 5 - ln 3 + ln 2) / 3
    close(nll(logits, labels), (2 * LN2 + LN5 - LN3) / 3)


def test_nll_ignores_masked_and_last_position_logits():
    changed = LOGITS.clone()
    changed[0, 2] = t([-7.0, 11.0, 0.5])  # last position predicts nothing
    close(nll(changed, LABELS), (LN2 + LN5 - LN3) / 2)
    masked = torch.tensor([[X, X, 0]])
    changed[0, 0] = t([100.0, -100.0, 0.0])  # position 0 predicts a -100 label
    close(nll(changed, masked), LN5 - LN3)


def test_token_entropy():
    # uniform over 4 -> ln 4 (any constant shift gives the same distribution)
    # [ln 2, 0, 0] -> p = [1/2, 1/4, 1/4]: H = 1/2 ln 2 + 2 * 1/4 ln 4 = 3/2 ln 2
    logits = t([[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0], [LN2, 0.0, 0.0, -30.0]])
    # the -30 entry has p = e^-30 / 4 ~ 2e-14: its effect (~1e-12) is far below the tolerance
    close(token_entropy(logits), [LN4, LN4, 1.5 * LN2])
    # batched shape (B, T, V) -> (B, T)
    assert token_entropy(torch.zeros(2, 3, 4)).shape == (2, 3)


def test_token_entropy_with_a_zero_probability_token():
    # p = [1/2, 1/4, 1/4, 0]: H = 3/2 ln 2 (the 0 log 0 term is 0 by convention)
    close(token_entropy(t([[LN2, 0.0, 0.0, -math.inf]])), [1.5 * LN2])


def test_token_logprobs_masked_position_with_minus_inf_logit():
    # position 0 is masked (-100); its logit for token 0 is -inf. position 1: [-inf, 0, 0] -> p(1) = 1/2
    logits = t([[[-math.inf, 0.0, 0.0], [-math.inf, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    close(nll(logits, torch.tensor([[X, X, 1]])), LN2)


def test_kl_on_answers_with_minus_inf_logits():
    # the reference gives token 2 zero probability (0 log 0 = 0), and a masked position is all -inf but one:
    # answer position: q = [1/2, 1/2, 0], p = [1/4, 1/4, 1/2] -> KL = 2 * 1/2 * ln 2 = ln 2
    ref = t([[[0.0, 0.0, -math.inf], [0.0, -math.inf, -math.inf], [0.0, 0.0, 0.0]]])
    live = t([[[0.0, 0.0, LN2], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    close(kl_on_answers(live, ref, torch.tensor([[X, 1, X]])), LN2)


# ---------------------------------------------------------------- gradient ascent / difference


def test_grad_ascent_loss_negates_nll():
    close(grad_ascent_loss(t(1.5)), -1.5)
    # with the LM loss of LOGITS: -(ln 2 + ln 5 - ln 3) / 2
    close(grad_ascent_loss(nll(LOGITS, LABELS)), -(LN2 + LN5 - LN3) / 2)


def test_grad_diff_loss():
    # -w_f * 2 + w_r * 0.5 with w_f = 1, w_r = 3: -2 + 1.5 = -0.5
    close(grad_diff_loss(t(2.0), t(0.5), 1.0, 3.0), -0.5)
    # w_f = 0.5, w_r = 0: -1
    close(grad_diff_loss(t(2.0), t(0.5), 0.5, 0.0), -1.0)


# ---------------------------------------------------------------- NPO


def test_npo_loss_at_the_reference_is_2_ln2_over_beta():
    # logp = ref: -(2/beta) log sigmoid(0) = -(2/beta) log(1/2) = (2/beta) ln 2; beta = 0.1 -> 20 ln 2
    logp = t([-3.0, -7.5], torch.float64)
    close(npo_loss(logp, logp.clone(), 0.1), 20 * LN2)
    close(npo_loss(logp, logp.clone(), 2.0), LN2)


def test_npo_loss_nonzero_difference():
    # beta = 0.5, d = logp - ref:
    #   d = 2 ln 3:  sigmoid(-0.5 * 2 ln 3) = sigmoid(-ln 3) = 1 / (1 + 3) = 1/4 -> -log = ln 4
    #   d = -2 ln 3: sigmoid(ln 3) = 3/4                                       -> -log = ln(4/3)
    # loss = (2/0.5) * mean = 4 * (ln 4 + ln 4 - ln 3) / 2 = 2 (2 ln 4 - ln 3)
    ref = t([-10.0, -4.0], torch.float64)
    logp = ref + t([2 * LN3, -2 * LN3], torch.float64)
    close(npo_loss(logp, ref, 0.5), 2 * (2 * LN4 - LN3))
    close(npo_loss(logp[:1], ref[:1], 0.5), 4 * LN4)


def test_npo_gradient_is_the_adaptive_weight():
    # dL/dd_i = (2/beta)(1/n) * beta * sigmoid(beta d_i) = (2/n) sigmoid(beta d_i)
    # beta = 0.5, d = [0, 2 ln 3]: sigmoid(0) = 1/2 -> 1/2; sigmoid(ln 3) = 3/4 -> 3/4
    logp = t([0.0, 2 * LN3], torch.float64).requires_grad_()
    npo_loss(logp, torch.zeros(2, dtype=torch.float64), 0.5).backward()
    close(logp.grad, [0.5, 0.75])


def test_npo_small_beta_limit_is_gradient_ascent_on_sequence_logprob():
    # log(1 + e^x) = ln 2 + x/2 + x^2/8 - x^4/192 + ..., with x = beta * d, so
    # npo = (2/beta) mean log(1 + e^{beta d}) = (2/beta) ln 2 + mean(d) + beta mean(d^2) / 4 + O(beta^3)
    beta = 1e-4
    d = t([1.0, -2.0, 0.5], torch.float64)
    ref = t([-5.0, -6.0, -7.0], torch.float64)
    loss = npo_loss(ref + d, ref, beta).item()
    first_order = 2 / beta * LN2 + (1.0 - 2.0 + 0.5) / 3  # mean(d) = -1/6
    second = beta * (1.0 + 4.0 + 0.25) / 3 / 4  # beta * mean(d^2) / 4 = 4.375e-5
    assert loss == pytest.approx(first_order, abs=1e-4)  # first-order Taylor
    assert loss - first_order == pytest.approx(second, abs=1e-6)  # and the next term


# ---------------------------------------------------------------- SimNPO


def test_simnpo_loss_length_normalised():
    # beta = 2, |y| = 4, logp = -2 ln 3: -(2/4)(-2 ln 3) = ln 3; sigmoid(ln 3) = 3/4
    # loss = -(2/2) log(3/4) = ln(4/3)
    close(simnpo_loss(t([-2 * LN3]), torch.tensor([4]), 2.0, 0.0), LN4 - LN3)


def test_simnpo_loss_with_margin_and_batch():
    # beta = 2, gamma = ln 3:
    #   (logp -2 ln 3, |y| 4): -(2/4)(-2 ln 3) - ln 3 = 0     -> -log sigmoid(0) = ln 2
    #   (logp -ln 3,   |y| 1): -(2/1)(-ln 3) - ln 3 = ln 3    -> -log(3/4) = ln 4 - ln 3
    # loss = (2/2) * (ln 2 + ln 4 - ln 3) / 2 = (3 ln 2 - ln 3) / 2
    logp, lengths = t([-2 * LN3, -LN3]), torch.tensor([4, 1])
    close(simnpo_loss(logp, lengths, 2.0, LN3), (3 * LN2 - LN3) / 2)


def test_simnpo_loss_zero_length_is_clamped_to_one():
    # |y| = 0 -> 1; beta = 1: -(1/1)(-ln 3) = ln 3 -> -(2/1) log(3/4) = 2 ln(4/3)
    close(simnpo_loss(t([-LN3]), torch.tensor([0]), 1.0, 0.0), 2 * (LN4 - LN3))


# ---------------------------------------------------------------- IdkDPO


def test_dpo_loss_zero_margin():
    # margin 0: -(2/beta) log sigmoid(0) = (2/beta) ln 2; beta = 0.1 -> 20 ln 2
    win, win_ref = t([-4.0], torch.float64), t([-5.0], torch.float64)
    lose, lose_ref = t([-2.0], torch.float64), t([-3.0], torch.float64)  # both ratios +1 -> margin 0
    close(dpo_loss(win, win_ref, lose, lose_ref, 0.1), 20 * LN2)


def test_dpo_loss_hand_case():
    # beta = 0.5; win ratio = +ln 3, lose ratio = -ln 3 -> margin = 2 ln 3, beta * margin = ln 3
    #   -log sigmoid(ln 3) = -log(3/4) = ln 4 - ln 3 ;  loss = (2/0.5)(ln 4 - ln 3) = 4 ln(4/3)
    # swapping win and lose: margin -2 ln 3 -> -log sigmoid(-ln 3) = ln 4 -> loss = 4 ln 4
    win_ref, lose_ref = t([-1.0]), t([-5.0])
    win, lose = win_ref + LN3, lose_ref - LN3
    close(dpo_loss(win, win_ref, lose, lose_ref, 0.5), 4 * (LN4 - LN3))
    close(dpo_loss(lose, lose_ref, win, win_ref, 0.5), 4 * LN4)
    # batch of both: mean -> 4 * (ln 4 - ln 3 + ln 4) / 2 = 2 (2 ln 4 - ln 3)
    both = dpo_loss(torch.cat([win, lose]), torch.cat([win_ref, lose_ref]),
                    torch.cat([lose, win]), torch.cat([lose_ref, win_ref]), 0.5)
    close(both, 2 * (2 * LN4 - LN3))


# ---------------------------------------------------------------- UNDIAL


def test_undial_single_answer_position():
    # vocab 3, one answer position (logits[0] predicts labels[1] = 1), strength s = ln 3.
    # teacher: z_ref = [0, ln 6, 0] - s * onehot(1) = [0, ln 2, 0] -> target = [1/4, 1/2, 1/4]
    # student: [ln 2, 0, 0] -> log p = [-ln 2, -2 ln 2, -2 ln 2]
    # CE = 1/4 ln 2 + 1/2 * 2 ln 2 + 1/4 * 2 ln 2 = 7/4 ln 2
    student = t([[[LN2, 0.0, 0.0], [1.0, 2.0, 3.0]]])
    teacher = t([[[0.0, math.log(6), 0.0], [-4.0, 0.0, 4.0]]])
    close(undial_loss(student, teacher, torch.tensor([[X, 1]]), LN3), 1.75 * LN2)


def test_undial_default_strength_ten():
    # s = 10: z_ref = [0, 10, 0] - 10 * onehot(1) = [0, 0, 0] -> uniform target [1/3, 1/3, 1/3]
    # student [ln 2, 0, 0]: CE = 1/3 (ln 2 + 2 ln 2 + 2 ln 2) = 5/3 ln 2
    student = t([[[LN2, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    teacher = t([[[0.0, 10.0, 0.0], [0.0, 0.0, 0.0]]])
    close(undial_loss(student, teacher, torch.tensor([[X, 1]]), 10.0), 5 / 3 * LN2)


def test_undial_ignores_prompt_and_padding_and_averages_over_answer_tokens():
    # sequence 0: prompt position (-100) with wild logits, then the answer position of the first test
    #             (CE = 7/4 ln 2), then a padding position (-100).
    # sequence 1: two answer positions with a uniform student: CE = ln 3 whatever the target is.
    # mean over the 3 answer positions of the batch: (7/4 ln 2 + 2 ln 3) / 3
    student = t([
        [[30.0, -30.0, 0.0], [LN2, 0.0, 0.0], [-5.0, 5.0, 1.0], [0.0, 0.0, 0.0]],
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [7.0, 1.0, -2.0], [0.0, 0.0, 0.0]],
    ])
    teacher = t([
        [[-30.0, 30.0, 0.0], [0.0, math.log(6), 0.0], [5.0, -5.0, 2.0], [0.0, 0.0, 0.0]],
        [[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [-7.0, 0.0, 2.0], [0.0, 0.0, 0.0]],
    ])
    labels = torch.tensor([[X, X, 1, X], [X, 0, 2, X]])
    close(undial_loss(student, teacher, labels, LN3), (1.75 * LN2 + 2 * LN3) / 3)


# ---------------------------------------------------------------- KL retain term


def test_kl_on_answers_identical_logits_is_zero():
    logits = t([ROWS])
    close(kl_on_answers(logits, logits.clone(), LABELS), 0.0)


def test_kl_on_answers_two_token_vocab():
    # reference q = softmax([0, 0]) = [1/2, 1/2]; model p = softmax([ln 3, 0]) = [3/4, 1/4]
    # KL(q || p) = 1/2 ln((1/2)/(3/4)) + 1/2 ln((1/2)/(1/4)) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3)
    # (KL(p || q) = 3/4 ln(3/2) - 1/4 ln 2 would differ: the direction matters)
    # positions: logits[0] predicts a -100 label (ignored, very different logits there), logits[1] and
    # logits[2] predict answer labels: position 1 has the KL above, position 2 identical logits (KL 0);
    # the last position predicts nothing. Mean over the 2 answer positions = 1/4 ln(4/3).
    model = t([[[9.0, -9.0], [LN3, 0.0], [1.0, 2.0], [5.0, 0.0]]])
    ref = t([[[-9.0, 9.0], [0.0, 0.0], [1.0, 2.0], [0.0, 5.0]]])
    labels = torch.tensor([[X, X, 0, 1]])
    close(kl_on_answers(model, ref, labels), 0.25 * (LN4 - LN3))
    close(kl_on_answers(model[:, :3], ref[:, :3], labels[:, :3]), 0.5 * (LN4 - LN3))


# ---------------------------------------------------------------- RMU


def test_masked_mse_ignores_padding():
    # h = [[1, 2], [3, 4], [100, 100]], target c*u = [1, 0], third token is padding
    # squared errors: [0, 4] and [4, 16] -> 24 over 2 tokens * 2 dims = 6
    h = t([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    close(masked_mse(h, t([1.0, 0.0]), mask), 6.0)
    # same with a per-token target (retain anchoring): target = h except token 1 off by [1, 1] -> 2 / 4
    target = h.clone()
    target[0, 1] += 1.0
    target[0, 2] = 0.0  # padding differs hugely, still ignored
    close(masked_mse(h, target, mask), 0.5)


def test_control_vector_norm_sign_and_seed():
    v = control_vector(64, 6.5, seed=3)
    assert v.shape == (64,)
    assert bool((v >= 0).all())
    close(v.double().norm(), 6.5)
    torch.testing.assert_close(v, control_vector(64, 6.5, seed=3), rtol=0, atol=0)
    assert not torch.equal(v, control_vector(64, 6.5, seed=4))
    # d = 1: u / |u| = 1 -> exactly the coefficient
    close(control_vector(1, 300.0, seed=0), [300.0])


def test_control_vector_ignores_the_global_rng():
    torch.manual_seed(0)
    a = control_vector(16, 2.0, seed=7)
    torch.manual_seed(123)
    torch.rand(5)
    torch.testing.assert_close(a, control_vector(16, 2.0, seed=7), rtol=0, atol=0)


# ---------------------------------------------------------------- learning-rate schedule and step count


def test_lr_factor_warmup():
    # warmup 4: steps 0..3 -> 1/4, 2/4, 3/4, 4/4
    assert [lr_factor(s, 4, 20, "constant") for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_factor(10, 4, 20, "constant") == 1.0
    assert lr_factor(0, 0, 20, "constant") == 1.0


def test_lr_factor_linear():
    # no warmup, total 10: 1 - step / 10
    assert [lr_factor(s, 0, 10, "linear") for s in (0, 5, 9, 10, 12)] == pytest.approx([1.0, 0.5, 0.1, 0.0, 0.0])
    # warmup 2, total 12: decay over the 10 steps after warmup; step 7 -> progress 5/10 -> 0.5
    assert lr_factor(1, 2, 12, "linear") == pytest.approx(1.0)
    assert lr_factor(2, 2, 12, "linear") == pytest.approx(1.0)
    assert lr_factor(7, 2, 12, "linear") == pytest.approx(0.5)


def test_lr_factor_cosine():
    # 0.5 (1 + cos(pi * progress)): progress 0 -> 1, 1/3 -> 0.75, 1/2 -> 0.5, 2/3 -> 0.25, 1 -> 0
    got = [lr_factor(s, 0, 12, "cosine") for s in (0, 4, 6, 8, 12, 20)]
    assert got == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0], abs=1e-12)
    # with warmup 2, total 12: step 7 is half-way through the decay
    assert lr_factor(7, 2, 12, "cosine") == pytest.approx(0.5, abs=1e-12)


def test_total_steps():
    assert total_steps(10, TrainConfig(max_steps=7)) == 7
    # 10 examples, batch 4 -> ceil(10/4) = 3 micro-batches per epoch; 5 epochs -> 15 steps
    assert total_steps(10, TrainConfig(epochs=5, batch_size=4)) == 15
    # with grad_accum 2: ceil(15 / 2) = 8
    assert total_steps(10, TrainConfig(epochs=5, batch_size=4, grad_accum=2)) == 8
    # half an epoch: ceil(0.5 * 3) = 2 ; zero epochs -> at least 1
    assert total_steps(10, TrainConfig(epochs=0.5, batch_size=4)) == 2
    assert total_steps(10, TrainConfig(epochs=0, batch_size=4)) == 1
    # batch larger than the set: 1 micro-batch per epoch
    assert total_steps(3, TrainConfig(epochs=2, batch_size=8)) == 2


def test_rmu_forget_positions_skip_the_shared_prefix():
    from unlearn.methods.common import after_common_prefix

    ids = torch.tensor([[1, 2, 3, 4, 0], [1, 2, 5, 6, 7]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    # shared prefix [1, 2]: positions 2.. count, padding excluded
    assert after_common_prefix(ids, mask).tolist() == [[False, False, True, True, False], [False, False, True, True, True]]
    # a single row is all prefix: every real token counts
    assert after_common_prefix(ids[:1], mask[:1]).tolist() == [[True, True, True, True, False]]


# ---------------------------------------------------------------- JensUn


def test_jsd_to_a_token_by_hand():
    from unlearn.methods.jensun import jsd_to_target

    # p_k = 1: the distributions agree, 0; p_k = 0: disjoint supports, ln 2
    close(jsd_to_target(t([1.0, 0.0], torch.float64)), t([0.0, LN2], torch.float64))
    # p_k = 1/2: 1/2 [1/2 ln 2 + 1/2 ln(1/1.5) + ln(2/1.5)] = 1/2 [0.3465736 - 0.2027326 + 0.2876821] = 0.2157616
    close(jsd_to_target(t(0.5, torch.float64)), 0.2157616)


def test_jsd_closed_form_matches_the_definition_with_a_one_hot_target():
    from unlearn.methods.jensun import jsd, jsd_to_target

    logp = torch.log_softmax(t([[0.3, -1.0, 2.0, 0.1]], torch.float64), dim=-1)
    one_hot = torch.log(t([[0.0, 0.0, 1.0, 0.0]], torch.float64))  # -inf off the target
    close(jsd(logp, one_hot), jsd_to_target(logp[:, 2].exp()))


def test_jsd_is_symmetric_and_bounded():
    from unlearn.methods.jensun import jsd

    p = torch.log(t([0.5, 0.5, 0.0], torch.float64))
    q = torch.log(t([0.0, 0.0, 1.0], torch.float64))
    close(jsd(p, q), LN2)  # disjoint supports
    close(jsd(q, p), LN2)
    r = torch.log(t([0.25, 0.25, 0.5], torch.float64))
    # M = (3/8, 3/8, 1/4); KL(P||M) = ln(4/3); KL(R||M) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3)
    close(jsd(p, r), 0.5 * (math.log(4 / 3) + 0.5 * math.log(4 / 3)))
    close(jsd(r, p), jsd(p, r))


def test_forget_jsd_averages_over_answer_tokens_only():
    from unlearn.methods.jensun import forget_jsd

    # LOGITS / LABELS: the two counted tokens get p = 1/2 and p = 3/5.
    # JSD(1/2) = 0.2157616 (above); JSD(3/5) = 1/2 [0.4 ln 2 + 0.6 ln(1.2/1.6) + ln(2/1.6)]
    #          = 1/2 [0.2772589 - 0.1726092 + 0.2231436] = 0.1638966
    close(forget_jsd(LOGITS, LABELS), (0.2157616 + 0.1638966) / 2)


def test_sign_momentum_steps_by_the_sign_of_the_momentum():
    from unlearn.train.loop import SignMomentum

    p = torch.nn.Parameter(t([1.0, 1.0, 1.0]))
    opt = SignMomentum([p], lr=0.1, momentum=0.5)
    p.grad = t([2.0, -0.001, 0.0])
    opt.step()  # m = 0.5 g = [1, -0.0005, 0]: sign [1, -1, 0] -> p = [0.9, 1.1, 1.0]
    close(p.detach(), [0.9, 1.1, 1.0])
    p.grad = t([-3.0, 0.0, 4.0])
    opt.step()  # m = 0.5 [1, -0.0005, 0] + 0.5 [-3, 0, 4] = [-1, -0.00025, 2] -> p = [1.0, 1.2, 0.9]
    close(p.detach(), [1.0, 1.2, 0.9])


def test_undo_noise_interpolates_toward_a_fresh_initialisation():
    from unlearn.methods.undo import fresh_init, noised

    close(noised(t([2.0, -4.0]), t([0.0, 1.0]), 0.25), [1.5, -2.75])  # 0.75 θ + 0.25 θ_init
    close(noised(t([2.0]), t([7.0]), 0.0), [2.0])
    close(noised(t([2.0]), t([7.0]), 1.0), [7.0])
    g = torch.Generator().manual_seed(0)
    matrix = fresh_init("layers.0.mlp.up_proj.weight", torch.zeros(200, 100), 0.02, g)
    assert abs(float(matrix.std()) - 0.02) < 0.001 and abs(float(matrix.mean())) < 0.001
    close(fresh_init("layers.0.input_layernorm.weight", torch.zeros(3), 0.02, g), [1.0, 1.0, 1.0])
    close(fresh_init("layers.0.mlp.up_proj.bias", torch.full((2,), 5.0), 0.02, g), [0.0, 0.0])


def test_undo_distillation_is_the_teachers_kl_on_answer_tokens():
    from unlearn.methods.undo import distill_loss

    assert float(distill_loss(LOGITS, LOGITS, LABELS)) == pytest.approx(0.0, abs=1e-7)
    teacher = LOGITS.clone()
    teacher[0, 0] = t([0.0, 0.0, 0.0])  # a uniform teacher at the first answer position, the same at the second
    # KL(q || p) at position 0: q = (1/3, 1/3, 1/3), p = (1/4, 1/2, 1/4): 1/3 [ln(4/3) + ln(2/3) + ln(4/3)]
    #   = 1/3 ln(32/27) = 0.0566330; position 1: 0. Mean over the two answer positions: 0.0283165
    close(distill_loss(LOGITS, teacher, LABELS), 0.0283165)


def test_mudman_neg_entropy_counts_answer_positions_only():
    from unlearn.methods.mudman import neg_entropy

    # row 0: p = (1/4, 1/2, 1/4): H = 1/2 ln 4 + 1/2 ln 2 = 1.5 ln 2 = 1.0397208
    # row 1: p = (3/5, 1/5, 1/5): H = 3/5 ln(5/3) + 2/5 ln 5 = 0.3064954 + 0.6437752 = 0.9502706
    close(neg_entropy(LOGITS, LABELS), -(1.0397208 + 0.9502706) / 2)
    close(neg_entropy(LOGITS, torch.tensor([[X, X, 0]])), -0.9502706)


def test_mudman_masks_disruptive_coordinates_and_normalises_the_step():
    from unlearn.methods.mudman import disruption_mask, masked_normalised_update

    close(disruption_mask(t([1.0, -2.0, 3.0, -0.5]), t([0.1, 0.2, -0.3, -4.0])), [1.0, 0.0, 0.0, 1.0])
    # g = ([3, -4], [0]): global norm 5; momenta signs keep the first coordinate only (and the zero matches zero)
    grads, momenta = [t([3.0, -4.0]), t([0.0])], [t([1.0, 1.0]), t([0.0])]
    steps = masked_normalised_update(grads, [disruption_mask(g, m) for g, m in zip(grads, momenta, strict=True)], lr=0.5)
    close(steps[0], [-0.5 * 3 / 5, 0.0])
    close(steps[1], [0.0])


# ---------------------------------------------------------------- token-reweighted ascent and CE-U
# LOGITS / LABELS: the answer tokens have p = 1/2 (position 0, token 1) and p = 3/5 (position 1, token 0).

def _answer_logp() -> tuple[torch.Tensor, torch.Tensor]:
    logp = t([[-LN2, LN3 - LN5]]).requires_grad_(True)
    return logp, torch.tensor([[True, True]])


def test_wga_weights_each_token_by_its_probability_held_fixed():
    # beta 1: (1/2 * ln 1/2 + 3/5 * ln 3/5) / 2; d/d logp = weight / 2 = [1/4, 3/10] (no gradient through the weight)
    logp, mask = _answer_logp()
    loss = wga_loss(logp, mask, beta=1.0)
    close(loss.detach(), (0.5 * -LN2 + 0.6 * (LN3 - LN5)) / 2)
    loss.backward()
    close(logp.grad, [[0.25, 0.3]])


def test_wga_beta_zero_is_gradient_ascent_on_the_token_mean():
    logp, mask = _answer_logp()
    close(wga_loss(logp, mask, beta=0.0).detach(), (-LN2 + LN3 - LN5) / 2)


def test_satimp_weights_by_hand():
    # beta1 = beta2 = 1: p (1 - p) = [1/4, 6/25]; defaults 5, 1: [(1/2)^6, (3/5)^5 (2/5)] = [1/64, 486/15625]
    logp, mask = _answer_logp()
    close(satimp_weights(logp.detach(), 1.0, 1.0), [[0.25, 6 / 25]])
    close(satimp_weights(logp.detach(), 5.0, 1.0), [[1 / 64, 486 / 15625]])
    loss = satimp_loss(logp, mask, 1.0, 1.0)
    close(loss.detach(), (0.25 * -LN2 + 6 / 25 * (LN3 - LN5)) / 2)
    loss.backward()
    close(logp.grad, [[0.125, 3 / 25]])


def test_weighted_ascent_ignores_uncounted_tokens():
    logp = t([[-LN2, -9.0]])
    close(wga_loss(logp, torch.tensor([[True, False]]), beta=1.0), 0.5 * -LN2)


def test_ce_u_by_hand():
    # position 0: p = [1/4, 1/2, 1/4], true 1 -> target [1/2, 0, 1/2], CE = -(1/2 ln 1/4) * 2 = 2 ln 2
    # position 1: p = [3/5, 1/5, 1/5], true 0 -> target [0, 1/2, 1/2], CE = -(1/2 ln 1/5) * 2 = ln 5
    close(ce_u_loss(LOGITS, LABELS, skip_first=0), (2 * LN2 + LN5) / 2)
    close(ce_u_loss(LOGITS, LABELS, skip_first=1), LN5)  # the first answer token of the row is left out
    close(ce_u_loss(LOGITS, LABELS, skip_first=2), 0.0)  # nothing left to count


def test_inverted_hinge_by_hand():
    # position 0: p = [1/4, 1/2, 1/4], true 1: 1 + 1/2 - 1/4 = 5/4; position 1: p = [3/5, 1/5, 1/5], true 0:
    # 1 + 3/5 - 1/5 = 7/5
    close(inverted_hinge_loss(LOGITS, LABELS), (5 / 4 + 7 / 5) / 2)
    close(inverted_hinge_loss(LOGITS, torch.tensor([[X, X, 0]])), 7 / 5)  # only the counted position


def test_inverted_hinge_gradient_moves_the_lead_to_the_best_other_token():
    # p = [1/8, 2/8, 5/8], true 2: IHL = 1 + 5/8 - 2/8 = 11/8. d p_2/dz = p_2 (e_2 - p) = [-5, -10, 15] / 64,
    # d p_1/dz = p_1 (e_1 - p) = [-2, 12, -10] / 64, so dIHL/dz = [-3, -22, 25] / 64: a step down the gradient
    # lowers the true token and raises the runner-up most.
    logits = torch.log(torch.tensor([[[1.0, 2.0, 5.0], [1.0, 1.0, 1.0]]])).requires_grad_()
    loss = inverted_hinge_loss(logits, torch.tensor([[X, 2]]))
    close(loss.detach(), 11 / 8)
    loss.backward()
    close(logits.grad[0, 0], torch.tensor([-3.0, -22.0, 25.0]) / 64)
    close(logits.grad[0, 1], torch.zeros(3))  # the last position predicts nothing


def test_ce_u_gradient_pushes_the_true_token_down():
    # d CE / d z = softmax(z) - target (the target is held fixed): position 0: [1/4, 1/2, 1/4] - [1/2, 0, 1/2],
    # over 2 counted positions -> [-1/8, 1/4, -1/8]
    logits = LOGITS.clone().requires_grad_(True)
    ce_u_loss(logits, LABELS, skip_first=0).backward()
    close(logits.grad[0, 0], [-0.125, 0.25, -0.125])
    close(logits.grad[0, 2], [0.0, 0.0, 0.0])  # predicts past the end: no gradient


def test_skip_first_answer_tokens_per_row():
    mask = torch.tensor([[False, True, True, True], [True, True, False, False]])
    assert skip_first_answer_tokens(mask, 1).tolist() == [[False, False, True, True], [False, True, False, False]]


def test_logit_margin_flattening_by_hand():
    # position 0: z = [0, ln 2, 0]: max - mean = ln 2 - ln 2 / 3 = 2/3 ln 2; position 1: [ln 3, 0, 0]: 2/3 ln 3
    close(logit_margin_flattening(LOGITS, LABELS), ((2 / 3 * LN2) ** 2 + (2 / 3 * LN3) ** 2) / 2)
    close(logit_margin_flattening(t([[[1.0, 1.0, 1.0], [5.0, 0.0, 0.0]]]), torch.tensor([[X, 2]])), 0.0)  # uniform


def test_dual_update_is_projected_ascent():
    assert dual_update(1.0, 2.5, 2.0, 1.0) == 1.5  # retain loss above its bound: the multiplier grows
    assert dual_update(1.0, 1.5, 2.0, 1.0) == 0.5
    assert dual_update(0.2, 1.0, 2.0, 1.0) == 0.0  # never below zero


def test_llmu_loss_by_hand():
    # -0.5 * 2 + 1 * 3 + 1 * 0.25 = 2.25
    assert llmu_loss(torch.tensor(2.0), torch.tensor(3.0), torch.tensor(0.25), 0.5, 1.0, 1.0).item() == 2.25


def test_spliced_batch_puts_retain_answers_after_forget_prompts():
    # forget rows: prompt [5, 6] answer [7, 8]; prompt [9] answer [10] + one pad
    forget = {"input_ids": torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]),
              "labels": torch.tensor([[X, X, 7, 8], [X, 10, X, X]])}
    # retain rows: prompt [20] answer [21, 22, 23]; prompt [24, 25] answer [26]
    retain = {"input_ids": torch.tensor([[20, 21, 22, 23], [24, 25, 26, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
              "labels": torch.tensor([[X, 21, 22, 23], [X, X, 26, X]])}
    batch = spliced_batch(forget, retain)
    # row 0: [5, 6] + [21, 22, 23]; row 1: [9] + [26], padded to 5
    assert batch["input_ids"].tolist() == [[5, 6, 21, 22, 23], [9, 26, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["labels"].tolist() == [[X, X, 21, 22, 23], [X, 26, X, X, X]]


def test_ngdiff_step_is_the_difference_of_unit_gradients():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    forget = (w * torch.tensor([3.0, 4.0])).sum()  # gradient [3, 4], norm 5
    retain = (w * torch.tensor([0.0, 2.0])).sum()  # gradient [0, 2], norm 2
    f_norm, r_norm = gradient_norm(forget, [w]), gradient_norm(retain, [w])
    assert (f_norm.item(), r_norm.item()) == (5.0, 2.0)
    normalized_difference(forget, retain, f_norm, r_norm).backward()
    # [0, 2] / 2 - [3, 4] / 5 = [0, 1] - [0.6, 0.8] = [-0.6, 0.2]
    torch.testing.assert_close(w.grad, torch.tensor([-0.6, 0.2]))


def test_task_vector_negation_by_hand():
    start, tuned = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 5.0])  # task vector [1, 3]
    assert negated(start, tuned, 1.0).tolist() == [0.0, -1.0]
    assert negated(start, tuned, 0.5).tolist() == [0.5, 0.5]


def test_ties_trim_keeps_the_largest_magnitudes():
    assert trim(torch.tensor([3.0, -1.0, 2.0, 0.5]), 0.5).tolist() == [3.0, 0.0, 2.0, 0.0]
    assert trim(torch.tensor([1.0, -4.0, 2.0]), 0.2).tolist() == [0.0, -4.0, 0.0]  # ceil(0.6) = 1 kept


def test_ties_merge_by_hand():
    a, b = torch.tensor([3.0, -1.0, 2.0, 0.5]), torch.tensor([1.0, 2.0, -4.0, 0.1])
    # trimmed to half: a -> [3, 0, 2, 0], b -> [0, 2, -4, 0]; sum [3, 2, -2, 0], elected signs [+, +, -, 0]
    # agreeing entries: a's 3, b's 2, b's -4 -> each averaged over one vector
    assert ties_merge([a, b], 0.5).tolist() == [3.0, 2.0, -4.0, 0.0]
    # density 1: nothing trimmed; [3+1]/2 = 2, [2]/1, [2 vs -4: sum -2 -> -4]/1, [0.5+0.1]/2 = 0.3
    torch.testing.assert_close(ties_merge([a, b], 1.0), torch.tensor([2.0, 2.0, -4.0, 0.3]))


def test_negmerge_keeps_only_sign_consensus():
    # signs agree on entries 0 and 1: means 2 and -1.5; entry 2 disagrees: 0
    merged = consensual_mean([torch.tensor([1.0, -2.0, 3.0]), torch.tensor([3.0, -1.0, -1.0])])
    assert merged.tolist() == [2.0, -1.5, 0.0]


def test_max_entropy_loss_by_hand():
    # position 0 predicts label 1: logits [ln 3, 0, 0] -> p = [3, 1, 1] / 5
    # KL(p || U) = 0.6 ln(1.8) + 2 * 0.2 ln(0.6) = 0.352672 - 0.204330 = 0.148342; a uniform position gives 0
    logits = torch.tensor([[[LN3, 0.0, 0.0], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])
    labels = torch.tensor([[X, 1, 2]])
    assert max_entropy_loss(logits, labels).item() == pytest.approx((0.148342 + 0.0) / 2, abs=1e-5)


def test_answer_preservation_by_hand():
    # beta 1: -log sigmoid(-(-2 - (-1))) = -log sigmoid(1) = 0.313262
    assert answer_preservation_loss(torch.tensor([-2.0]), torch.tensor([-1.0]), 1.0).item() == pytest.approx(0.313262,
                                                                                                           abs=1e-6)


def test_adaptive_rmu_targets_by_hand():
    # token norms 5 (3-4-0) and 1 (0-0-1); beta 2; u = [0, 1, 0] -> targets [0, 10, 0] and [0, 2, 0]
    h_ref = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]])
    targets = adaptive_targets(h_ref, torch.tensor([0.0, 1.0, 0.0]), 2.0)
    assert targets.tolist() == [[[0.0, 10.0, 0.0], [0.0, 2.0, 0.0]]]


def test_idk_nll_loss_by_hand():
    assert idk_nll_loss(torch.tensor(1.5), torch.tensor(0.5), 2.0).item() == 2.5  # 1.5 + 2 * 0.5


def test_lunar_redirection_and_targets_by_hand():
    # declined means [2, 0], forget means [0, 1] -> r = [2, -1]; c 2 -> h_ref + [4, -2]
    declined = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    forget = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    r = redirection(declined, forget)
    assert r.tolist() == [2.0, -1.0]
    assert redirected_targets(torch.tensor([[[1.0, 1.0]]]), r, 2.0).tolist() == [[[5.0, -1.0]]]


def test_lunar_positions_by_hand():
    # rows share a 1-token prefix (7); row 0: prompt 7 5 | answer 6 6, row 1: prompt 7 4 4 | answer 6 + pad;
    # row 2: a plain text (every token labelled) 7 9 9
    batch = {"input_ids": torch.tensor([[7, 5, 6, 6, 0], [7, 4, 4, 6, 0], [7, 9, 9, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]),
             "labels": torch.tensor([[X, X, 6, 6, X], [X, X, X, 6, X], [7, 9, 9, X, X]])}
    assert prompt_mask(batch).tolist() == [[False, True, False, False, False], [False, True, True, False, False],
                                           [False, True, True, False, False]]
    assert last_prompt_token(batch).tolist() == [1, 2, 2]


def test_task_vector_retain_vector_by_hand():
    start, tuned, retained = torch.tensor([1.0, 1.0]), torch.tensor([3.0, 2.0]), torch.tensor([2.0, 1.0])
    # tau = [2, 1], tau_r = [1, 0]: orthogonal part [0, 1]; alpha 1
    assert without_shared(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 0.0])).tolist() == [0.0, 1.0]
    assert without_shared(torch.tensor([2.0, 1.0]), torch.zeros(2)).tolist() == [2.0, 1.0]
    assert task_update(start, tuned, retained, 1.0, "orthogonal").tolist() == [1.0, 0.0]
    assert task_update(start, tuned, retained, 1.0, "subtract").tolist() == [0.0, 0.0]  # 1 - ([2, 1] - [1, 0])
    assert task_update(start, tuned, None, 0.5, "none").tolist() == [0.0, 0.5]


def test_task_vector_density_negates_only_the_largest_entries():
    start = torch.zeros(4)
    tuned = torch.tensor([4.0, -1.0, 0.5, -3.0])  # tau itself; the two largest in magnitude: 4 and -3
    assert task_update(start, tuned, None, 2.0, "none", density=0.5).tolist() == [-8.0, 0.0, 0.0, 6.0]
    assert task_update(start, tuned, None, 2.0, "none", density=1.0).tolist() == [-8.0, 2.0, -1.0, 6.0]
    retained = torch.tensor([0.0, 0.0, 0.0, -3.0])  # subtract first: [4, -1, 0.5, 0], then the largest quarter
    assert task_update(start, tuned, retained, 1.0, "subtract", density=0.25).tolist() == [-4.0, 0.0, 0.0, 0.0]


def test_altpo_alternates_must_change_the_fact():
    answer = "Ann was born in Ghent."
    assert repeats_fact("She was born in Ghent, Belgium.", answer, ("Ghent",))
    assert not repeats_fact("Ann was born in Lyon.", answer, ("Ghent",))
    assert repeats_fact("  ", answer, ())  # empty
    assert repeats_fact("Ann was born in Ghent", answer, ())  # without focus: the whole answer, normalised
    assert not repeats_fact("Ann was born in Porto.", answer, ())
    assert first_alternate(["Ann was born in Ghent.", "", "Born in Riga."], answer, ("Ghent",)) == "Born in Riga."
    assert first_alternate(["Ghent!"], answer, ("Ghent",)) is None


def test_meow_memo_by_hand():
    # cuts every 5 characters from 1, below the length: "abcdefghijkl" (12) -> 1, 6, 11
    assert memo_cuts("abcdefghijkl", 5) == [1, 6, 11] and memo_cuts("a", 5) == [] and memo_cuts("ab", 1) == [1]
    # ROUGE-1 precision: 2 of the prediction's 4 unigrams are in the reference
    assert rouge1_precision("born in riga latvia", "born in oslo today") == pytest.approx(0.5)
    assert rouge1_precision("born in riga", "") == 0.0
    # MEMO = mean over the cuts: (1 + 0.5 + 0) / 3
    rests = ["born in riga", "in riga", "riga"]
    continuations = ["born in riga", "in oslo", "paris"]
    assert memo_score(rests, continuations) == pytest.approx(0.5)
    assert memo_score([], []) == 0.0


def test_meow_keeps_distinct_inversions_and_selects_by_memo():
    answer, focus = "Ann was born in Ghent.", ("Ghent",)
    samples = ["Ann was born in Riga.", "", "Ann was born in Ghent.", "Ann was born in Riga.", " Ann was born in Oslo. ",
               "Ann was born in Lyon."]
    assert distinct_inversions(samples, answer, focus, 2) == ["Ann was born in Riga.", "Ann was born in Oslo."]
    assert distinct_inversions(samples, answer, focus, 9) == ["Ann was born in Riga.", "Ann was born in Oslo.",
                                                              "Ann was born in Lyon."]
    candidates, scores = ["a", "b", "c", "d"], [0.2, 0.9, 0.2, 0.5]
    assert select_by_memo(candidates, scores, 2, "largest") == ["b", "d"]
    assert select_by_memo(candidates, scores, 2, "smallest") == ["a", "c"]  # a tie keeps the earlier first
