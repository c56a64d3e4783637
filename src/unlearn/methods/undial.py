"""UNDIAL: self-distillation towards the starting model's logits with the answer token pushed down.

target_t = softmax(z_ref,t - s * onehot(y_t));  L = mean over answer tokens of CE(target_t, p_theta,t)
plus w_r * R(retain). The teacher is fixed, so the loss is bounded (no collapse as in gradient ascent).
Source: Dong et al. 2024 "UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning in
Large Language Models". Defaults s = 10, w_r = 0 (no retain term), lr 1e-4: OpenUnlearning UNDIAL config.
This implementation averages over answer tokens only (the reference implementation averages over
every position, prompt and padding included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.logprobs import IGNORE
from .base import METHODS, LossMethod, LossOutput, OptionalRetain, StepBatch
from .common import (
    logits_of,
    masked_token_mean,
    reference_logits,
    token_share,
    with_optional_retain,
)


def undial_loss(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, strength: float) -> torch.Tensor:
    """Cross-entropy to the adjusted teacher distribution, averaged over answer positions."""
    logits, ref_logits, labels = logits[:, :-1].float(), ref_logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE
    onehot = F.one_hot(labels.masked_fill(~mask, 0), ref_logits.shape[-1]).to(ref_logits.dtype)
    target = F.softmax(ref_logits - strength * onehot, dim=-1)
    ce = -(target * F.log_softmax(logits, dim=-1)).sum(-1)
    return masked_token_mean(ce, mask)


@METHODS.register("undial")
@dataclass
class UNDIAL(OptionalRetain, LossMethod):
    strength: float = 10.0
    forget_weight: float = 1.0
    retain_weight: float = 0.0
    retain_loss: str = "nll"  # nll | kl
    summary = "self-distil to the starting model with the forget token's logit lowered"
    benchmark_settings = {
        "demo": {"train.lr": 1e-4, "method.retain_weight": 20.0},
        "tofu": {"train.lr": 1e-4},
    }
    needs_reference = True
    default_lr = 1e-4

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        ref, _ = reference_logits(reference, batch.forget)
        logits, labels = logits_of(model, batch.forget)
        forget = undial_loss(logits, ref, labels, self.strength) * token_share(batch.forget)
        loss, retain_value = with_optional_retain(forget, self.forget_weight, self.retain_weight, self.retain_loss,
                                                  model, batch.retain, reference)
        return LossOutput(loss, {"undial": forget.item(), "retain": retain_value.item()})
