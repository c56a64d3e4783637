"""Membership-inference (MIA) scores and their ROC-AUC over forget (members) vs holdout (non-members).

Orientation, as in OpenUnlearning (locuslab/open-unlearning, src/evals/metrics/mia/): every score is a
*non-membership* score, larger when the text looks less like training data (a loss). The AUC is
P(s_holdout > s_forget) + 1/2 P(tie), so AUC = 1 when the forget set looks like training data, 0.5 when
it is indistinguishable from held-out text (what a model never trained on it gives, roughly), and below
0.5 when it looks *less* familiar than unseen text (over-unlearning). MUSE reports 1 - this AUC; see
`privacy.privleak`.

Tokens that count: those whose label is not -100, after the usual shift (logits at t predict t+1).
LOSS, zlib and reference use all of them (OpenUnlearning `evaluate_probability`). Min-K%, Min-K%++ and
the gradient norm leave out the last counted token of each row, the end-of-sequence prediction
(OpenUnlearning `tokenwise_logprobs`, "-1 to ignore eos prediction"); `skip_last=False` keeps it.
A row with no counted token scores NaN (OpenUnlearning returns 0 for Min-K% there; a NaN is reported).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..models.logprobs import IGNORE, shift, token_logprobs
from .base import MetricResult, metric

DEFAULT_K = 0.4  # OpenUnlearning mia_min_k / mia_min_k_plus_plus configs and MUSE's 'Min-40%' privleak key
VARIANCE_FLOOR = 1e-6  # OpenUnlearning's floor on the Min-K%++ variance before the square root
NAN = float("nan")


# ----------------------------------------------------------------------------- helpers


def drop_last_counted(labels: torch.Tensor) -> torch.Tensor:
    """A copy of `labels` (B, T) with the last counted position of each row set to -100."""
    counted = labels != IGNORE
    positions = torch.arange(labels.shape[-1], device=labels.device)
    last = torch.where(counted, positions, -1).max(-1).values
    out = labels.clone()
    rows = torch.nonzero(last >= 0).squeeze(-1)
    out[rows, last[rows]] = IGNORE
    return out


def lowest_k_mean(values: torch.Tensor, mask: torch.Tensor, k: float) -> torch.Tensor:
    """Mean of the m smallest counted values of each row, m = max(1, floor(n * k)), n = counted tokens.

    The count is rounded down with a floor of one, as OpenUnlearning does (`max(1, int(len * k))`);
    MUSE and the Min-K% code use `int(len * k)` without the floor of one. NaN for rows with no counted
    value or with a NaN among them. Shapes: (B, N) -> (B,).
    """
    if not 0 < k <= 1:
        raise ConfigError(f"k must be a fraction in (0, 1], got {k}; e.g. k=0.4 for the lowest 40%")
    counts = mask.sum(-1)
    # float64 product then floor: the same number Python's int(n * k) gives
    take = torch.floor(counts.double() * k).clamp(min=1).to(values.dtype)
    ordered = values.masked_fill(~mask, math.inf).sort(-1).values
    rank = torch.arange(values.shape[-1], device=values.device)
    chosen = rank.unsqueeze(0) < take.unsqueeze(-1)
    mean = torch.where(chosen, ordered, torch.zeros_like(ordered)).sum(-1) / take
    bad = (counts == 0) | (torch.isnan(values) & mask).any(-1)
    return mean.masked_fill(bad, NAN)


def zlib_length(text: str) -> int:
    """Bytes of `zlib.compress(text.encode("utf-8"))`, default level (Carlini et al. 2021 'zlib entropy')."""
    return len(zlib.compress(text.encode("utf-8")))


def counted_texts(tokenizer, labels: torch.Tensor) -> list[str]:
    """The text of each row's counted tokens, special tokens skipped (OpenUnlearning
    `extract_target_texts_from_processed_data`): the text whose zlib length normalises the loss."""
    return [tokenizer.decode(row[row != IGNORE].tolist(), skip_special_tokens=True) for row in labels]


# ----------------------------------------------------------------------------- per-example scores


def loss_scores(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LOSS attack: mean NLL over the counted tokens, -(1/n) sum_t log p(x_t | x_<t). Shape (B,).

    Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the Connection to Overfitting";
    OpenUnlearning mia/loss.py (score = `avg_loss`). Lower = more likely a member.
    """
    logp, mask = token_logprobs(logits, labels)
    return -logp.sum(-1) / mask.sum(-1)


def zlib_scores(logits: torch.Tensor, labels: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
    """zlib attack: mean NLL / zlib length in bytes of the text, i.e. log-perplexity over zlib entropy.

    Carlini et al. 2021, "Extracting Training Data from Large Language Models", Sec. 5.2 (zlib ratio);
    OpenUnlearning mia/zlib.py (`avg_loss / len(zlib.compress(text.encode("utf-8")))`, with the text the
    decoded counted tokens, see `counted_texts`). Lower = more likely a member. Shape (B,).
    """
    if len(texts) != logits.shape[0]:
        raise ConfigError(
            f"zlib_scores: {len(texts)} texts for a batch of {logits.shape[0]}; pass one text per row"
        )
    lengths = torch.tensor([zlib_length(t) for t in texts], dtype=torch.float32, device=logits.device)
    return loss_scores(logits, labels) / lengths


def min_k_scores(
    logits: torch.Tensor, labels: torch.Tensor, k: float = DEFAULT_K, skip_last: bool = True
) -> torch.Tensor:
    """Min-K% Prob: minus the mean of the lowest k-fraction of the counted token log-probs.

    score = -(1/m) sum_{t in lowest m} log p(x_t | x_<t), m = max(1, floor(n k)) (see `lowest_k_mean`).
    Shi et al. 2023, "Detecting Pretraining Data from Large Language Models", Sec. 3 (the paper scores the
    mean itself, higher = member; the minus makes it a loss, as OpenUnlearning mia/min_k.py and MUSE do).
    k = 0.4 by default (OpenUnlearning configs, MUSE 'Min-40%'; the paper's best is 0.2). Shape (B,).
    """
    if skip_last:
        labels = drop_last_counted(labels)
    logp, mask = token_logprobs(logits, labels)
    return -lowest_k_mean(logp, mask, k)


def token_zscores(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-K%++ token scores (log p(x_t) - mu_t) / sigma_t and the counted mask, shapes (B, T-1).

    mu_t = E_{z~p}[log p(z)], sigma_t^2 = E_{z~p}[(log p(z))^2] - mu_t^2, both under the model's own
    next-token distribution p(. | x_<t) over the whole vocabulary; sigma_t^2 is floored at 1e-6.
    """
    logits, targets = shift(logits, labels)
    mask = targets != IGNORE
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    zero = torch.zeros_like(logp)
    # p log p -> 0 as p -> 0; written out so a -inf logit gives 0, not 0 * inf = NaN
    mu = torch.where(p == 0, zero, p * logp).sum(-1)
    second = torch.where(p == 0, zero, p * logp.square()).sum(-1)
    variance = (second - mu.square()).clamp(min=VARIANCE_FLOOR)
    picked = logp.gather(-1, targets.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)
    z = (picked - mu) / variance.sqrt()
    return torch.where(mask, z, torch.zeros_like(z)), mask


def min_k_plus_plus_scores(
    logits: torch.Tensor, labels: torch.Tensor, k: float = DEFAULT_K, skip_last: bool = True
) -> torch.Tensor:
    """Min-K%++: minus the mean of the lowest k-fraction of the token z-scores of `token_zscores`.

    Zhang et al. 2024, "Min-K%++: Improved Baseline for Detecting Pre-Training Data from Large Language
    Models" (arXiv 2404.02936), Sec. 3; OpenUnlearning mia/min_k_plus_plus.py (same sign and rounding as
    `min_k_scores`; the variance floor 1e-6 is OpenUnlearning's). Lower = more likely a member. Shape (B,).
    """
    if skip_last:
        labels = drop_last_counted(labels)
    z, mask = token_zscores(logits, labels)
    return -lowest_k_mean(z, mask, k)


@torch.no_grad()
def text_scores(model, tokenizer, texts: Sequence[str], score, batch_size: int = 16,
                max_length: int = 1 << 16) -> list[float]:
    """`score(logits, labels)` (one of the attacks above) of each text scored alone, without a chat template, on
    its first `max_length` tokens; NaN for a text too short to predict a token."""
    from ..data.collate import collate, to_device
    from ..data.formatting import encode_text_windows
    from ..models.scoring import scored_logits

    windows = [encode_text_windows(tokenizer, text, max_length)[:1] for text in texts]
    scored = [i for i, w in enumerate(windows) if w]
    device = next(model.parameters()).device
    values = [NAN] * len(texts)
    for start in range(0, len(scored), batch_size):
        rows = scored[start : start + batch_size]
        logits, labels = scored_logits(model, to_device(collate([windows[i][0] for i in rows], tokenizer.pad_token_id),
                                                        device))
        for i, value in zip(rows, score(logits.float(), labels).tolist(), strict=True):
            values[i] = value
    return values


def reference_scores(target_losses: torch.Tensor, reference_losses: torch.Tensor) -> torch.Tensor:
    """Reference-model attack: LOSS of the target model minus LOSS of a reference model, per example.

    Difficulty calibration with a reference model: Carlini et al. 2021 Sec. 5.2 (comparison to a smaller
    model), Watson et al. 2022 "On the Importance of Difficulty Calibration in Membership Inference
    Attacks"; OpenUnlearning mia/reference.py (`target_loss - ref_loss`). Lower = more likely a member.
    """
    if target_losses.shape != reference_losses.shape:
        raise ConfigError(
            f"reference_scores: target losses {tuple(target_losses.shape)} and reference losses "
            f"{tuple(reference_losses.shape)} must describe the same examples"
        )
    return target_losses - reference_losses


def _mean_nll(model, input_ids, labels, attention_mask) -> torch.Tensor:
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    logp, mask = token_logprobs(logits, labels)
    return -logp.sum() / mask.sum()


def gradient_norm(
    model,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    p: float = 2.0,
    combine: str = "mean",
    skip_last: bool = True,
) -> float:
    """Gradient-norm attack for ONE example: the p-norm of d(mean NLL)/d(theta) over the model's parameters.

    combine="mean" (default, the reference): (1/P) sum_i ||g_i||_p over the P parameter tensors that get a
    gradient (OpenUnlearning mia/gradnorm.py, after MIMIR, Duan et al. 2024 "Do Membership Inference
    Attacks Work on Large Language Models?", arXiv 2402.17012; p = 2 in their configs).
    combine="global": the p-norm of all gradients as one vector, ||(g_1, ..., g_P)||_p.
    The NLL is the mean over the counted tokens without the last one (see the module notes).
    Every floating-point parameter takes part, whatever its requires_grad (a freshly loaded model, as the
    reference evaluates, has all of them trainable); requires_grad flags are restored afterwards and the
    gradients are taken with `torch.autograd.grad`, so no `.grad` is written or cleared. Per example by
    nature (one backward pass each); NaN when the row has no counted token. Lower = more likely a member.
    """
    if combine not in ("mean", "global"):
        raise ConfigError(f"gradient_norm: combine must be 'mean' or 'global', got {combine!r}")
    if p < 1:
        raise ConfigError(f"gradient_norm: p must be >= 1 (1, 2 or inf), got {p}")
    if input_ids.dim() == 1:
        input_ids, labels = input_ids.unsqueeze(0), labels.unsqueeze(0)
        attention_mask = None if attention_mask is None else attention_mask.unsqueeze(0)
    if input_ids.shape[0] != 1:
        raise ConfigError(
            f"gradient_norm takes one example, got a batch of {input_ids.shape[0]}; use gradient_norm_scores"
        )
    used = drop_last_counted(labels) if skip_last else labels
    if not (used[:, 1:] != IGNORE).any():
        return NAN
    params = [q for q in model.parameters() if q.is_floating_point()]
    device = params[0].device
    input_ids, used = input_ids.to(device), used.to(device)
    attention_mask = None if attention_mask is None else attention_mask.to(device)
    flags = [q.requires_grad for q in params]
    try:
        for q in params:
            q.requires_grad_(True)
        with torch.enable_grad():
            loss = _mean_nll(model, input_ids, used, attention_mask)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        for q, flag in zip(params, flags, strict=True):
            q.requires_grad_(flag)
    norms = torch.stack([torch.linalg.vector_norm(g.float(), ord=p) for g in grads if g is not None])
    value = norms.mean() if combine == "mean" else torch.linalg.vector_norm(norms, ord=p)
    return float(value)


def gradient_norm_scores(
    model,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    **options,
) -> torch.Tensor:
    """`gradient_norm` of each row of a padded batch (a loop: gradients are per example). Shape (B,)."""
    values = [
        gradient_norm(
            model, input_ids[i : i + 1], labels[i : i + 1],
            None if attention_mask is None else attention_mask[i : i + 1], **options,
        )
        for i in range(input_ids.shape[0])
    ]
    return torch.tensor(values, dtype=torch.float64)


# ----------------------------------------------------------------------------- AUC


def _floats(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).reshape(-1).numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ConfigError(f"{name}: no scores; the MIA AUC needs at least one forget and one holdout example")
    return array


def roc_auc(member_scores, nonmember_scores) -> float:
    """Exact ROC-AUC of non-membership scores: P(s_nonmember > s_member) + 1/2 P(s_nonmember = s_member).

    The Mann-Whitney U statistic over all member/non-member pairs divided by their number, ties counted
    one half; identical to sklearn `roc_auc_score(labels, scores)` with members labelled 0 and non-members
    1, which is how OpenUnlearning (mia/utils.py `mia_auc`) scores forget (0) against holdout (1).
    Members are the forget set. NaN if any score is NaN.
    """
    members = _floats(member_scores, "roc_auc members")
    nonmembers = _floats(nonmember_scores, "roc_auc non-members")
    if np.isnan(members).any() or np.isnan(nonmembers).any():
        return NAN
    ordered = np.sort(members)
    below = np.searchsorted(ordered, nonmembers, side="left")  # members strictly below each non-member
    up_to = np.searchsorted(ordered, nonmembers, side="right")  # ... below or tied
    wins = below.sum() + 0.5 * (up_to - below).sum()
    return float(wins / (members.size * nonmembers.size))


def auc_result(forget_scores, holdout_scores) -> MetricResult:
    """MetricResult of an MIA: value = `roc_auc(forget, holdout)`; per_example = the forget scores followed
    by the holdout scores (len(forget) first); NaN scores are counted and make the value NaN."""
    forget = _floats(forget_scores, "forget scores")
    holdout = _floats(holdout_scores, "holdout scores")
    per_example = forget.tolist() + holdout.tolist()
    n_nan = int(np.isnan(forget).sum() + np.isnan(holdout).sum())
    return MetricResult(NAN if n_nan else roc_auc(forget, holdout), per_example, n_nan)


# Registered MIA metrics: scores in (from the functions above), AUC out. Lower is better for unlearning:
# the original model is near 1, a model never trained on the forget set near 0.5; below the retain
# model's AUC is over-unlearning, which `privleak` measures against that model.


@metric("mia_loss", higher_is_better=False, version="1")
def mia_loss(forget_scores, holdout_scores) -> MetricResult:
    """ROC-AUC of the LOSS attack (`loss_scores`) over forget vs holdout; 1 = forget looks trained on."""
    return auc_result(forget_scores, holdout_scores)


@metric("mia_zlib", higher_is_better=False, version="1")
def mia_zlib(forget_scores, holdout_scores) -> MetricResult:
    """ROC-AUC of the zlib attack (`zlib_scores`) over forget vs holdout; 1 = forget looks trained on."""
    return auc_result(forget_scores, holdout_scores)


@metric("mia_min_k", higher_is_better=False, version="1")
def mia_min_k(forget_scores, holdout_scores) -> MetricResult:
    """ROC-AUC of Min-K% Prob (`min_k_scores`) over forget vs holdout; 1 = forget looks trained on."""
    return auc_result(forget_scores, holdout_scores)


@metric("mia_min_k_plus_plus", higher_is_better=False, version="1")
def mia_min_k_plus_plus(forget_scores, holdout_scores) -> MetricResult:
    """ROC-AUC of Min-K%++ (`min_k_plus_plus_scores`) over forget vs holdout; 1 = forget looks trained on."""
    return auc_result(forget_scores, holdout_scores)


@metric("mia_gradnorm", higher_is_better=False, version="1")
def mia_gradnorm(forget_scores, holdout_scores) -> MetricResult:
    """ROC-AUC of the gradient-norm attack (`gradient_norm_scores`) over forget vs holdout."""
    return auc_result(forget_scores, holdout_scores)


@metric("mia_reference", higher_is_better=False, version="1")
def mia_reference(forget_scores, holdout_scores) -> MetricResult:
    """ROC-AUC of the reference-model attack (`reference_scores`) over forget vs holdout."""
    return auc_result(forget_scores, holdout_scores)
