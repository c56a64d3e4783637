"""Gradient ascent: raise the loss of the forget set.

L = -NLL(forget) = mean over forget answer tokens of log pi(y_t | x, y_<t).
Source: Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks in Language Models".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import answer_nll


def grad_ascent_loss(forget_nll: torch.Tensor) -> torch.Tensor:
    """The negated language-modelling loss."""
    return -forget_nll


@METHODS.register("grad_ascent")
@dataclass
class GradAscent(LossMethod):
    summary = "maximise the forget set's NLL (no retain term)"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5},
        "tofu": {"train.lr": 1e-5},
    }

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        forget_nll = answer_nll(model, batch.forget)
        return LossOutput(grad_ascent_loss(forget_nll), {"forget_nll": forget_nll.item()})
