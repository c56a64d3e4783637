"""SimNPO: NPO without a reference model, with length normalisation and a margin.

L_SimNPO = -(2/beta) * mean_i log sigmoid(-(beta/|y_i|) * log pi_theta(y_i|x_i) - gamma)
plus w_r * R(retain).
Source: Fan et al. 2024 "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
Unlearning", eq. (4). Defaults beta = 4.5, gamma = 0, w_f = 0.125, w_r = 1, R = NLL: OpenUnlearning
SimNPO TOFU config (its `delta` is gamma/beta).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.logprobs import answer_lengths, sequence_logprob
from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import logits_of, retain_term


def simnpo_loss(logp: torch.Tensor, lengths: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """-(2/beta) mean log sigmoid(-(beta/|y|) logp - gamma)."""
    return -(2.0 / beta) * F.logsigmoid(-(beta / lengths.clamp(min=1)) * logp - gamma).mean()


@METHODS.register("simnpo")
@dataclass
class SimNPO(RetainTerm, LossMethod):
    beta: float = 4.5
    gamma: float = 0.0
    forget_weight: float = 0.125
    retain_weight: float = 1.0
    retain_loss: str = "nll"  # nll | kl
    summary = "reference-free, length-normalised NPO with a margin"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},
        "tofu": {"train.lr": 1e-5},
    }

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        labels = batch.forget["labels"]
        logp = sequence_logprob(*logits_of(model, batch.forget))
        forget = simnpo_loss(logp, answer_lengths(labels), self.beta, self.gamma)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = self.forget_weight * forget + self.retain_weight * retain_value
        return LossOutput(loss, {"simnpo": forget.item(), "retain": retain_value.item()})
