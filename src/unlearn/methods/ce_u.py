"""CE-U (cross-entropy unlearning): at every answer token, move probability from the true token to the others.

target_t = softmax(z_t with z_t[y_t] = -inf), computed from the model's own logits and held fixed;
L_f = mean over forget answer tokens (after the first `skip_first` of each answer) of CE(target_t, softmax(z_t));
L = w_f * L_f + w_r * R(retain). The target is the model's distribution renormalised without the true token, so
the loss is bounded and keeps the rest of the distribution's shape (no reference model is needed).
Source: Yang 2025, "CE-U: Cross Entropy Unlearning" (arXiv 2025). Defaults skip_first = 1, w_f = 1, w_r = 0:
OpenUnlearning's CEU trainer (ignore_first_n_answer_tokens = 1, forget loss only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.logprobs import IGNORE
from .base import METHODS, LossMethod, LossOutput, OptionalRetain, StepBatch
from .common import logits_of, masked_token_mean, token_share, with_optional_retain


def skip_first_answer_tokens(mask: torch.Tensor, n: int) -> torch.Tensor:
    """`mask` (B, T) of counted positions without the first n counted positions of each row."""
    return mask & (mask.long().cumsum(-1) > n)


def ce_u_loss(logits: torch.Tensor, labels: torch.Tensor, skip_first: int = 1) -> torch.Tensor:
    """Mean over the counted answer positions of CE(softmax(z without the true token), softmax(z))."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = skip_first_answer_tokens(labels != IGNORE, skip_first)
    safe = labels.masked_fill(labels == IGNORE, 0)
    without_true = logits.detach().scatter(-1, safe.unsqueeze(-1), float("-inf"))
    target = F.softmax(without_true, dim=-1)
    logq = F.log_softmax(logits, dim=-1)
    ce = -torch.where(target > 0, target * logq, torch.zeros_like(logq)).sum(-1)  # 0 * -inf would be nan
    return masked_token_mean(ce, mask)


@METHODS.register("ce_u")
@dataclass
class CEU(OptionalRetain, LossMethod):
    skip_first: int = 1
    forget_weight: float = 1.0
    retain_weight: float = 0.0
    retain_loss: str = "nll"  # nll | kl
    summary = "cross-entropy to the model's own distribution with the true token removed"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # the loss family's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }

    def validate(self) -> None:
        super().validate()
        if self.skip_first < 0:
            raise ConfigError("ce_u: skip_first must be 0 or more")

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        logits, labels = logits_of(model, batch.forget)
        forget = ce_u_loss(logits, labels, self.skip_first) * token_share(batch.forget)
        loss, retain_value = with_optional_retain(forget, self.forget_weight, self.retain_weight, self.retain_loss,
                                                  model, batch.retain, reference)
        return LossOutput(loss, {"ce_u": forget.item(), "retain": retain_value.item()})
