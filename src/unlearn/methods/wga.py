"""Weighted gradient ascent (WGA): gradient ascent whose token terms are weighted by the token's probability.

L_f = mean over forget answer tokens of  p_t^beta * log p_t,   p_t = pi(y_t | x, y_<t),
the weight p_t^beta held fixed (no gradient through it); L = w_f * L_f + w_r * R(retain). A token the model
already finds unlikely gets little further push, so the loss does not run away to -inf as gradient ascent's does.
Source: Wang et al. 2025, "Rethinking LLM Unlearning Objectives: A Gradient Perspective and Go Beyond" (ICLR 2025).
Defaults beta = 1, w_f = 1, w_r = 1, R = NLL: OpenUnlearning's WGA configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.logprobs import token_logprobs
from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import logits_of, retain_term, token_share, weighted_token_ascent


def wga_weights(logp: torch.Tensor, beta: float) -> torch.Tensor:
    """p_t^beta = exp(beta * log p_t)."""
    return torch.exp(beta * logp)


def wga_loss(logp: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    return weighted_token_ascent(logp, mask, wga_weights(logp, beta))


@METHODS.register("wga")
@dataclass
class WGA(RetainTerm, LossMethod):
    beta: float = 1.0
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    retain_loss: str = "nll"  # nll | kl
    summary = "gradient ascent with each token weighted by its own probability^beta, with a retain term"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # the loss family's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        logp, mask = token_logprobs(*logits_of(model, batch.forget))
        forget = wga_loss(logp, mask, self.beta) * token_share(batch.forget)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = self.forget_weight * forget + self.retain_weight * retain_value
        return LossOutput(loss, {"wga": forget.item(), "retain": retain_value.item()})
