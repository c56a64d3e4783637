"""SatImp: gradient ascent with token weights that favour tokens neither certain nor already forgotten.

L_f = mean over forget answer tokens of  p_t^beta1 * (1 - p_t)^beta2 * log p_t,   p_t = pi(y_t | x, y_<t),
the weight held fixed (no gradient through it); L = w_f * L_f + w_r * R(retain). p^beta1 ("saturation") fades
the push on tokens already made unlikely, (1 - p)^beta2 ("importance") on tokens the model is sure of.
Source: Yang et al. 2025, "Exploring Criteria of Loss Reweighting to Enhance LLM Unlearning" (ICML 2025,
arXiv:2505.11953). Defaults beta1 = 5, beta2 = 1, w_f = 1, w_r = 0.1, R = NLL: OpenUnlearning's SatImp settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.logprobs import token_logprobs
from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import logits_of, retain_term, token_share, weighted_token_ascent


def satimp_weights(logp: torch.Tensor, beta1: float, beta2: float) -> torch.Tensor:
    """p^beta1 * (1 - p)^beta2 of each token's probability p = exp(logp)."""
    p = logp.exp()
    return p.pow(beta1) * (1.0 - p).clamp(min=0.0).pow(beta2)


def satimp_loss(logp: torch.Tensor, mask: torch.Tensor, beta1: float, beta2: float) -> torch.Tensor:
    return weighted_token_ascent(logp, mask, satimp_weights(logp, beta1, beta2))


@METHODS.register("satimp")
@dataclass
class SatImp(RetainTerm, LossMethod):
    beta1: float = 5.0
    beta2: float = 1.0
    forget_weight: float = 1.0
    retain_weight: float = 0.1
    retain_loss: str = "nll"  # nll | kl
    summary = "gradient ascent weighted by p^beta1 (1-p)^beta2 per token, with a retain term"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # the loss family's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        logp, mask = token_logprobs(*logits_of(model, batch.forget))
        forget = satimp_loss(logp, mask, self.beta1, self.beta2) * token_share(batch.forget)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = self.forget_weight * forget + self.retain_weight * retain_value
        return LossOutput(loss, {"satimp": forget.item(), "retain": retain_value.item()})
