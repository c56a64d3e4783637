"""CATNIP: NPO per token, against the model's own reverse policy 1 - p_t as the reference.

l_t = -(2/beta) * log sigmoid(-beta * (log p_t - log(1 - p_t))),   p_t = pi_theta(y_t | x, y_<t),
the reference log(1 - p_t) held fixed (no gradient through it, as NPO's reference); L_f = mean over every forget
answer token of the step (a token average, not a sequence average: no length bias); L = w_f * L_f [+ w_r * R].
Each token's gradient is 2 p^beta / (p^beta + (1 - p)^beta) times gradient ascent's: it grows with the model's
confidence in the token (at beta = 1 it is 2 p_t) and fades as the token is forgotten.
Source: Yang, Zhong, Hong, Zhu 2026, "CATNIP: LLM Unlearning via Calibrated and Tokenized Negative Preference
Alignment" (arXiv 2602.02824). A reconstruction from the paper's abstract and its public ICLR 2026 reviews, not
from its equations (reference 1 - pi_theta, token-wise average, no retain data); beta = 1 and the rates are this
project's choices (docs/paper_index.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.logprobs import token_logprobs
from .base import METHODS, LossMethod, LossOutput, OptionalRetain, StepBatch
from .common import logits_of, masked_token_mean, token_share, with_optional_retain


def reverse_reference(logp: torch.Tensor) -> torch.Tensor:
    """log(1 - p) of each token's log-probability, without gradient (p kept below 1 so that it stays finite)."""
    p = logp.detach().exp().clamp(max=1.0 - 1e-6)
    return torch.log1p(-p)


def catnip_loss(logp: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean over counted tokens of -(2/beta) log sigmoid(-beta (log p_t - log(1 - p_t)))."""
    per_token = -(2.0 / beta) * F.logsigmoid(-beta * (logp - reverse_reference(logp)))
    return masked_token_mean(per_token, mask)


@METHODS.register("catnip")
@dataclass
class CATNIP(OptionalRetain, LossMethod):
    beta: float = 1.0
    forget_weight: float = 1.0
    retain_weight: float = 0.0  # the method needs no retain data; a retain term can be added
    retain_loss: str = "nll"  # nll | kl
    summary = "NPO per token against the model's own 1 - p as reference: each token pushed in proportion to its confidence"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5},
        "tofu": {"train.lr": 1e-5},
    }

    def validate(self) -> None:
        super().validate()
        if self.beta <= 0:
            raise ConfigError("catnip: beta must be > 0")

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        logp, mask = token_logprobs(*logits_of(model, batch.forget))
        forget = catnip_loss(logp, mask, self.beta) * token_share(batch.forget)
        loss, retain_value = with_optional_retain(forget, self.forget_weight, self.retain_weight, self.retain_loss,
                                                  model, batch.retain, reference)
        return LossOutput(loss, {"catnip": forget.item(), "retain": retain_value.item()})
