"""Known-answer tests for the membership-inference scores, their AUC, and MUSE privleak.

Logits are written as log-probabilities (log_softmax(log p) = log p), so every token log-prob is chosen
by hand. Reminder of the shift: logits[t] predicts labels[t + 1]; -100 marks tokens that do not count.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from unlearn.errors import ConfigError
from unlearn.metrics.base import METRICS
from unlearn.metrics.mia import (
    counted_texts,
    drop_last_counted,
    gradient_norm,
    gradient_norm_scores,
    loss_scores,
    lowest_k_mean,
    min_k_plus_plus_scores,
    min_k_scores,
    reference_scores,
    roc_auc,
    token_zscores,
    zlib_length,
    zlib_scores,
)
from unlearn.metrics.privacy import privleak_value

LN2 = math.log(2)
X = -100


def as_logits(rows) -> torch.Tensor:
    """(B, T, V) logits equal to the log of the given probability rows."""
    return torch.log(torch.tensor(rows, dtype=torch.float64)).float()


def dist(target: int, p: float, vocab: int = 4) -> list[float]:
    """A next-token distribution giving `target` probability p and sharing the rest evenly."""
    row = [(1 - p) / (vocab - 1)] * vocab
    row[target] = p
    return row


UNIFORM4 = [0.25] * 4

# ----------------------------------------------------------------------------- LOSS and zlib

# Row 0 counts labels[1] = 0 (predicted by logits[0], p = 1/2) and labels[2] = 1 (logits[1], p = 1/4):
#   LOSS = -(ln 1/2 + ln 1/4) / 2 = (1 + 2) ln2 / 2 = 1.5 ln2.
# Row 1 counts only labels[2] = 2 (logits[1], p = 1/2): LOSS = ln2.
LOSS_LOGITS = as_logits([
    [[1 / 2, 1 / 4, 1 / 4], [1 / 8, 1 / 4, 5 / 8], [1 / 3, 1 / 3, 1 / 3]],
    [[1 / 3, 1 / 3, 1 / 3], [1 / 4, 1 / 4, 1 / 2], [1 / 3, 1 / 3, 1 / 3]],
])
LOSS_LABELS = torch.tensor([[X, 0, 1], [X, X, 2]])


def test_loss_scores_hand_values():
    assert loss_scores(LOSS_LOGITS, LOSS_LABELS).tolist() == pytest.approx([1.5 * LN2, LN2], rel=1e-6)


def test_zlib_lengths_by_hand():
    # zlib = 2-byte header + deflate stream + 4-byte Adler-32. The empty text is one fixed-Huffman block
    # holding only end-of-block: 3 + 7 bits -> 2 bytes, 8 in all. "a" adds one 8-bit literal: 18 bits -> 3
    # bytes, 9 in all.
    assert zlib_length("") == 8
    assert zlib_length("a") == 9


def test_zlib_scores_divide_the_mean_nll_by_the_compressed_length():
    scores = zlib_scores(LOSS_LOGITS, LOSS_LABELS, ["", "a"])
    assert scores.tolist() == pytest.approx([1.5 * LN2 / 8, LN2 / 9], rel=1e-6)
    with pytest.raises(ConfigError, match="one text per row"):
        zlib_scores(LOSS_LOGITS, LOSS_LABELS, ["only one"])


def test_counted_texts_decode_the_counted_tokens_without_specials(tokenizer):
    ids = tokenizer.encode("hi there", add_special_tokens=False) + [tokenizer.eos_token_id]
    labels = torch.tensor([[X, X, X] + ids[3:]])  # "hi " masked, "there<|im_end|>" counted
    assert counted_texts(tokenizer, labels) == ["there"]


# ----------------------------------------------------------------------------- Min-K%

# Row 0 counts labels[1..5] = [0, 1, 2, 0, 3] with p = [1/2, 1/4, 1/8, 1/2, 1/16]:
#   log p / ln2 = [-1, -2, -3, -1, -4]; the last one (-4) is the end-of-sequence token skip_last drops.
# Row 1 counts labels[1..2] = [3, 3] with p = [1/4, 1/2]: log p / ln2 = [-2, -1].
MINK_LOGITS = as_logits([
    [dist(0, 1 / 2), dist(1, 1 / 4), dist(2, 1 / 8), dist(0, 1 / 2), dist(3, 1 / 16), UNIFORM4],
    [dist(3, 1 / 4), dist(3, 1 / 2), UNIFORM4, UNIFORM4, UNIFORM4, UNIFORM4],
])
MINK_LABELS = torch.tensor([[X, 0, 1, 2, 0, 3], [X, 3, 3, X, X, X]])


@pytest.mark.parametrize(
    ("k", "skip_last", "expected"),
    [
        # skip_last: row 0 keeps [-1, -2, -3, -1] (n = 4), row 1 keeps [-2] (n = 1)
        (0.4, True, [3.0, 2.0]),  # m = max(1, floor(1.6)) = 1 -> -3; row 1: m = 1 -> -2
        (0.6, True, [2.5, 2.0]),  # m = floor(2.4) = 2 -> (-3 - 2) / 2
        (1.0, True, [1.75, 2.0]),  # all four: -7 / 4
        # all tokens: row 0 n = 5, row 1 n = 2
        (0.4, False, [3.5, 2.0]),  # m = floor(2.0) = 2 -> (-4 - 3) / 2; row 1: floor(0.8) = 0 -> 1 -> -2
        (0.1, False, [4.0, 2.0]),  # floor(0.5) = 0 -> at least one -> -4
        (1.0, False, [2.2, 1.5]),  # (1 + 2 + 3 + 1 + 4) / 5; (2 + 1) / 2
    ],
)
def test_min_k_scores_hand_values(k, skip_last, expected):
    scores = min_k_scores(MINK_LOGITS, MINK_LABELS, k=k, skip_last=skip_last)
    assert scores.tolist() == pytest.approx([e * LN2 for e in expected], rel=1e-6)


def test_lowest_k_count_is_python_int_of_n_times_k_with_a_floor_of_one():
    values = torch.arange(10, dtype=torch.float32).unsqueeze(0)  # 0..9
    full = torch.ones_like(values, dtype=torch.bool)
    assert lowest_k_mean(values, full, 0.3).item() == pytest.approx(1.0)  # int(10 * 0.3) = 3 -> (0+1+2)/3
    assert lowest_k_mean(values[:, :3], full[:, :3], 0.3).item() == 0.0  # int(0.9) = 0 -> 1 -> 0
    for bad_k in (0.0, 1.5):
        with pytest.raises(ConfigError, match="fraction"):
            lowest_k_mean(values, full, bad_k)


def test_drop_last_counted():
    labels = torch.tensor([[X, 5, 6, 7, X], [X, X, X, X, X], [X, 4, X, X, X]])
    assert drop_last_counted(labels).tolist() == [[X, 5, 6, X, X], [X, X, X, X, X], [X, X, X, X, X]]
    assert labels[0, 3] == 7  # the input is untouched


# ----------------------------------------------------------------------------- Min-K%++

# Every position uses D = [1/2, 1/4, 1/8, 1/8]; log D / ln2 = [-1, -2, -3, -3].
#   mu      = sum p log p       = -ln2 (1/2 + 2/4 + 3/8 + 3/8)  = -1.75 ln2
#   E[lp^2] = sum p (log p)^2   =  ln2^2 (1/2 + 4/4 + 9/8 + 9/8) = 3.75 ln2^2
#   sigma^2 = 3.75 - 1.75^2 = 11/16 (times ln2^2), sigma = (sqrt(11) / 4) ln2
#   z(token 0) = (-1 + 1.75) 4 / sqrt(11) = 3 / sqrt(11)
#   z(token 1) = (-2 + 1.75) 4 / sqrt(11) = -1 / sqrt(11)
#   z(token 2 or 3) = (-3 + 1.75) 4 / sqrt(11) = -5 / sqrt(11)
# Row 0 counts targets [0, 1, 2, 0, 3] -> z sqrt(11) = [3, -1, -5, 3, -5].
D = [1 / 2, 1 / 4, 1 / 8, 1 / 8]
PP_LOGITS = as_logits([[D] * 6])
PP_LABELS = torch.tensor([[X, 0, 1, 2, 0, 3]])
R11 = math.sqrt(11)


def test_token_zscores_hand_values():
    z, mask = token_zscores(PP_LOGITS, PP_LABELS)
    assert mask.tolist() == [[True] * 5]
    assert z[0].tolist() == pytest.approx([3 / R11, -1 / R11, -5 / R11, 3 / R11, -5 / R11], rel=1e-5)


@pytest.mark.parametrize(
    ("k", "skip_last", "expected"),
    [
        (0.4, True, 5 / R11),  # [3, -1, -5, 3]: m = 1 -> -5
        (0.6, True, 3 / R11),  # m = 2 -> (-5 - 1) / 2 = -3
        (0.6, False, R11 / 3),  # all five: m = 3 -> (-5 - 5 - 1) / 3 = -11/3, over sqrt(11) = -sqrt(11)/3
    ],
)
def test_min_k_plus_plus_hand_values(k, skip_last, expected):
    score = min_k_plus_plus_scores(PP_LOGITS, PP_LABELS, k=k, skip_last=skip_last)
    assert score.item() == pytest.approx(expected, rel=1e-5)


def test_min_k_plus_plus_variance_floor_and_impossible_tokens():
    # [1/2, 1/2, 0, 0] (two -inf logits): mu = -ln2, E[lp^2] = ln2^2 -> variance 0, floored at 1e-6;
    # the target's log p equals mu, so z = 0, finite (no 0 * inf).
    logits = torch.tensor([[[0.0, 0.0, -math.inf, -math.inf]] * 2])
    z, _ = token_zscores(logits, torch.tensor([[X, 1]]))
    assert z.tolist() == [[0.0]]


# ----------------------------------------------------------------------------- NaN handling


def test_rows_without_counted_tokens_and_nan_logits_score_nan():
    labels = torch.tensor([[X, 0, 1, 2, 0, 3], [X, X, X, X, X, X]])
    logits = MINK_LOGITS.clone()
    scorers = (loss_scores, min_k_scores, min_k_plus_plus_scores)
    for scores in (fn(logits, labels) for fn in scorers):
        assert not math.isnan(scores[0]) and math.isnan(scores[1])
    logits[0, 2, 1] = math.nan  # a NaN at a counted position of row 0
    for scores in (fn(logits, labels) for fn in scorers):
        assert math.isnan(scores[0])


# ----------------------------------------------------------------------------- reference and padding


def test_reference_scores():
    out = reference_scores(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0]))
    assert out.tolist() == [0.5, -1.0]
    with pytest.raises(ConfigError, match="same examples"):
        reference_scores(torch.tensor([1.0]), torch.tensor([1.0, 2.0]))


def padded_batch(rows: list[list[int]], prompt: int = 2):
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), X)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, prompt : len(row)] = torch.tensor(row[prompt:])
        mask[i, : len(row)] = 1
    return ids, labels, mask


@torch.no_grad()
def test_batched_scores_equal_one_row_at_a_time(tiny_model):
    rows = [[2, 40, 41, 42, 43, 44, 3], [2, 50, 51, 3], [2, 60, 61, 62, 63, 3]]
    ids, labels, mask = padded_batch(rows)
    logits = tiny_model(input_ids=ids, attention_mask=mask).logits
    for fn in (loss_scores, min_k_scores, min_k_plus_plus_scores):
        batched = fn(logits, labels)
        for i, row in enumerate(rows):
            one_ids, one_labels, _ = padded_batch([row])
            alone = fn(tiny_model(input_ids=one_ids).logits, one_labels)
            assert batched[i].item() == pytest.approx(alone.item(), rel=1e-4, abs=1e-6)


# ----------------------------------------------------------------------------- gradient norm


class BiasModel(torch.nn.Module):
    """logits = b + c at every position (vocabulary 2); `unused` never gets a gradient."""

    def __init__(self):
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(2))
        self.c = torch.nn.Parameter(torch.zeros(1))
        self.unused = torch.nn.Parameter(torch.ones(3))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=(self.b + self.c).expand(*input_ids.shape, 2))


# At b = c = 0, p = [1/2, 1/2] and d NLL / d logits = p - onehot(y):
#   [-1/2, 1/2] for y = 0 and [1/2, -1/2] for y = 1.
# Labels [-, 0, 0, 1], all three tokens: g_b = ([-1/2, 1/2] * 2 + [1/2, -1/2]) / 3 = [-1/6, 1/6],
#   ||g_b||_2 = sqrt(2)/6.
#   g_c = sum of d/dlogits over the vocabulary = 0. `unused` has no gradient and is left out.
#   mean of the per-tensor norms = (sqrt(2)/6 + 0) / 2 = sqrt(2)/12; global norm = sqrt(2)/6.
#   p = 1: ||g_b||_1 = 1/3 -> mean 1/6; p = inf: 1/6 -> mean 1/12.
# skip_last drops the final token (y = 1): g_b = [-1/2, 1/2], ||g_b||_2 = sqrt(2)/2 -> mean sqrt(2)/4.
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"skip_last": False}, math.sqrt(2) / 12),
        ({"skip_last": False, "combine": "global"}, math.sqrt(2) / 6),
        ({"skip_last": False, "p": 1}, 1 / 6),
        ({"skip_last": False, "p": math.inf}, 1 / 12),
        ({}, math.sqrt(2) / 4),
        ({"combine": "global"}, math.sqrt(2) / 2),
    ],
)
def test_gradient_norm_hand_values(options, expected):
    model = BiasModel()
    ids, labels = torch.tensor([[1, 0, 0, 1]]), torch.tensor([[X, 0, 0, 1]])
    assert gradient_norm(model, ids, labels, **options) == pytest.approx(expected, rel=1e-6)


def test_gradient_norm_restores_flags_and_leaves_grads_alone():
    model = BiasModel()
    model.b.requires_grad_(False)
    model.c.grad = torch.tensor([7.0])
    with torch.no_grad():  # works even when called under no_grad
        value = gradient_norm(model, torch.tensor([1, 0, 0, 1]), torch.tensor([X, 0, 0, 1]), skip_last=False)
    assert value == pytest.approx(math.sqrt(2) / 12, rel=1e-6)
    assert (model.b.requires_grad, model.c.requires_grad) == (False, True)
    assert model.b.grad is None and model.c.grad.tolist() == [7.0]
    assert math.isnan(gradient_norm(model, torch.tensor([1, 0]), torch.tensor([X, 0])))  # only the EOS counts
    with pytest.raises(ConfigError, match="combine"):
        gradient_norm(model, torch.tensor([1, 0, 0]), torch.tensor([X, 0, 0]), combine="sum")


def test_gradient_norm_matches_direct_autograd_on_a_tiny_llama(tiny_model):
    ids = torch.tensor([[2, 40, 41, 42, 43, 3]])
    labels = torch.tensor([[X, X, 41, 42, 43, 3]])
    params = list(tiny_model.parameters())
    params[0].requires_grad_(False)  # must not change which parameters count

    # direct: counted tokens 41, 42, 43 (the final 3 is the EOS the reference leaves out),
    # predicted by logits at positions 1, 2, 3
    for q in params:
        q.requires_grad_(True)
    logp = torch.log_softmax(tiny_model(input_ids=ids).logits[0], -1)
    loss = -torch.stack([logp[1, 41], logp[2, 42], logp[3, 43]]).mean()
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    norms = torch.stack([g.norm() for g in grads if g is not None])
    params[0].requires_grad_(False)

    assert gradient_norm(tiny_model, ids, labels) == pytest.approx(norms.mean().item(), rel=1e-5)
    global_norm = gradient_norm(tiny_model, ids, labels, combine="global")
    assert global_norm == pytest.approx(norms.norm().item(), rel=1e-5)
    assert params[0].requires_grad is False and all(q.grad is None for q in params)

    # a padded batch gives each row's own value
    rows = [[2, 40, 41, 42, 43, 3], [2, 50, 51, 3]]
    batch_ids, batch_labels, batch_mask = padded_batch(rows)
    batched = gradient_norm_scores(tiny_model, batch_ids, batch_labels, batch_mask)
    alone = [gradient_norm(tiny_model, *padded_batch([row])[:2]) for row in rows]
    assert batched.tolist() == pytest.approx(alone, rel=1e-4)


# ----------------------------------------------------------------------------- AUC


@pytest.mark.parametrize(
    ("members", "nonmembers", "expected"),
    [
        ([0.1, 0.2], [0.5, 0.9], 1.0),  # every non-member scores higher (a loss): perfectly separated
        ([0.5, 0.9], [0.1, 0.2], 0.0),  # every non-member lower: perfectly reversed
        ([1.0, 1.0], [1.0, 1.0, 1.0], 0.5),  # all tied: each pair counts 1/2
        # pairs (non-member > member): 2 vs 1 win, vs 2 tie, vs 3 loss = 1.5; 4 beats all three = 3 -> 4.5 / 6
        ([1.0, 2.0, 3.0], [2.0, 4.0], 0.75),
        ([0.3], [0.2, 0.3, 0.4], 0.5),  # loss + tie + win = 1.5 / 3
    ],
)
def test_roc_auc_hand_values(members, nonmembers, expected):
    assert roc_auc(members, nonmembers) == pytest.approx(expected)


def test_roc_auc_equals_pairwise_count_with_ties():
    gen = torch.Generator().manual_seed(0)
    members = (torch.rand(40, generator=gen) * 5).round().tolist()  # few distinct values: many ties
    nonmembers = (torch.rand(30, generator=gen) * 5 + 1).round().tolist()
    pairs = sum(1.0 if n > m else 0.5 if n == m else 0.0 for m in members for n in nonmembers)
    assert roc_auc(members, nonmembers) == pytest.approx(pairs / (40 * 30), abs=1e-12)
    assert roc_auc(torch.tensor(members), torch.tensor(nonmembers)) == pytest.approx(pairs / 1200, abs=1e-12)


def test_roc_auc_nan_and_empty():
    assert math.isnan(roc_auc([0.1, math.nan], [0.3]))
    with pytest.raises(ConfigError, match="at least one forget and one holdout"):
        roc_auc([], [0.3])


MIA_NAMES = ["mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "mia_gradnorm", "mia_reference"]


@pytest.mark.parametrize("name", MIA_NAMES)
def test_registered_mia_metrics(name):
    info = METRICS.get(name)
    assert info.higher_is_better is False
    # non-member 0.3 beats both members (2); 0.2 beats 0.1 and ties 0.2 (1.5) -> 3.5 / 4
    result = info.fn([0.1, 0.2], [0.3, 0.2])
    assert (result.value, result.per_example, result.n_nan) == (0.875, [0.1, 0.2, 0.3, 0.2], 0)
    result = info.fn(torch.tensor([0.1, math.nan]), [0.3])
    assert math.isnan(result.value) and result.n_nan == 1 and result.per_example[0] == pytest.approx(0.1)


def test_mia_auc_orientation_on_losses():
    # a model that fits its training data better gives the forget set lower losses -> AUC 1
    assert METRICS.get("mia_loss").fn([0.5, 0.7], [2.0, 2.5]).value == 1.0


# ----------------------------------------------------------------------------- privleak


@pytest.mark.parametrize(
    ("auc_unlearned", "auc_retain", "expected"),
    [
        (0.5, 0.5, 0.0),  # as private as the retain model
        (1.0, 0.5, -100.0),  # ((1-1) - (1-0.5)) / (0.5 + 1e-10) * 100: the original model, under-unlearned
        (0.25, 0.5, 50.0),  # (0.75 - 0.5) / 0.5 * 100: over-unlearning
        (0.8, 0.6, -50.0),  # (0.2 - 0.4) / 0.4 * 100
    ],
)
def test_privleak_hand_values(auc_unlearned, auc_retain, expected):
    assert privleak_value(auc_unlearned, auc_retain) == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_privleak_equals_muse_formula_on_muse_orientation():
    # MUSE's AUC is 1 - ours; MUSE: (auc_u - auc_r) / auc_r * 100, e.g. its News retrain AUC 0.4772
    muse_unlearned, muse_retrain = 0.0010, 0.4772
    expected = (muse_unlearned - muse_retrain) / muse_retrain * 100
    assert privleak_value(1 - muse_unlearned, 1 - muse_retrain) == pytest.approx(expected, rel=1e-8)


def test_registered_privleak():
    info = METRICS.get("privleak")
    assert info.higher_is_better is True
    result = info.fn(0.8, 0.6)
    assert result.value == pytest.approx(-50.0) and result.per_example == [0.8, 0.6] and result.n_nan == 0
    result = info.fn(math.nan, 0.6)
    assert math.isnan(result.value) and result.n_nan == 1
