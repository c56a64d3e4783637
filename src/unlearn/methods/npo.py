"""Negative Preference Optimization.

L_NPO = -(2/beta) * mean_i log sigmoid(-beta * (log pi_theta(y_i|x_i) - log pi_ref(y_i|x_i)))
plus w_r * R(retain) (NPO+RT). Sequence log-probs are sums over answer tokens.
Source: Zhang et al. 2024 "Negative Preference Optimization: From Catastrophic Collapse to Effective
Unlearning", eq. (3). Defaults beta = 0.1, w_r = 1, R = NLL: the paper's TOFU setting / OpenUnlearning NPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.logprobs import sequence_logprob
from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import reference_logits, retain_term, seq_logprob


def npo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2/beta) mean log sigmoid(-beta * (logp - ref_logp)); tends to GA's loss as beta -> 0 (up to scale)."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


@METHODS.register("npo")
@dataclass
class NPO(RetainTerm, LossMethod):
    beta: float = 0.1
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    retain_loss: str = "nll"  # nll | kl
    summary = "negative preference optimisation against the starting model, with a retain term"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},
        "tofu": {"train.lr": 1e-5},
    }
    needs_reference = True

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        ref_logp = sequence_logprob(*reference_logits(reference, batch.forget))
        logp = seq_logprob(model, batch.forget)
        forget = npo_loss(logp, ref_logp, self.beta)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = self.forget_weight * forget + self.retain_weight * retain_value
        return LossOutput(loss, {"npo": forget.item(), "retain": retain_value.item(), "logp": logp.mean().item()})
