"""Gradient difference: ascend on the forget set, descend on the retain set.

L = -w_f * NLL(forget) + w_r * R(retain),  R = NLL (default) or KL(p_ref || p_theta) on retain answers.
Source: Liu et al. 2022 "Continual Learning and Private Unlearning"; TOFU (Maini et al. 2024) baseline.
Defaults w_f = w_r = 1, R = NLL: OpenUnlearning GradDiff config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import answer_nll, retain_term


def grad_diff_loss(
    forget_nll: torch.Tensor, retain_value: torch.Tensor, forget_weight: float, retain_weight: float
) -> torch.Tensor:
    return -forget_weight * forget_nll + retain_weight * retain_value


@METHODS.register("grad_diff")
@dataclass
class GradDiff(RetainTerm, LossMethod):
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    retain_loss: str = "nll"  # nll | kl
    summary = "gradient ascent on forget + descent (NLL or KL) on retain"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},
        "tofu": {"train.lr": 1e-5},
    }

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        forget_nll = answer_nll(model, batch.forget)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = grad_diff_loss(forget_nll, retain_value, self.forget_weight, self.retain_weight)
        return LossOutput(loss, {"forget_nll": forget_nll.item(), "retain": retain_value.item()})
