"""PDU (primal-dual unlearning): flatten the forget logits, subject to a bound on the retain loss.

    minimise L_f  subject to  L_r <= eps,   as the Lagrangian  w_f * L_f + lambda * (L_r - eps),
    L_f = mean over forget answer positions t of (max_v z_t,v - mean_v z_t,v)^2     (logit-margin flattening)
    L_r = NLL (or KL) on the retain batch
    dual ascent after each first-order step:  lambda <- max(0, lambda + eta * (L_r - eps))

L_f is zero exactly when every logit at the position is equal (a uniform next-token distribution); lambda grows
while the retain loss is above its bound and shrinks (to 0 at least) while it is below.
Source: Entesari et al. 2025, "Constrained Entropic Unlearning: A Primal-Dual Framework for Large Language
Models" (NeurIPS 2025). Defaults w_f = 1, lambda_0 = 1, eta = 1: OpenUnlearning's PDU trainer (gamma, alpha,
dual_step_size). eps: given, or (ours) the retain loss at the first step, i.e. "do not let the retain loss rise".
This implementation averages L_f over answer positions only; the reference averages over every position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.logprobs import IGNORE
from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import logits_of, masked_token_mean, retain_term, token_share


def logit_margin_flattening(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer positions of (max logit - mean logit)^2 (labels shifted as everywhere)."""
    logits, mask = logits[:, :-1].float(), labels[:, 1:] != IGNORE
    margin = (logits.max(-1).values - logits.mean(-1)) ** 2
    return masked_token_mean(margin, mask)


def dual_update(multiplier: float, retain_loss: float, bound: float, step_size: float) -> float:
    """Projected dual ascent on the constraint retain_loss <= bound."""
    return max(0.0, multiplier + step_size * (retain_loss - bound))


@METHODS.register("pdu")
@dataclass
class PDU(RetainTerm, LossMethod):
    forget_weight: float = 1.0
    retain_weight: float = 1.0  # lambda's starting value
    dual_step_size: float = 1.0
    retain_eps: float | None = None  # None: the retain loss at the first step
    retain_loss: str = "nll"  # nll | kl
    summary = "flatten the forget logits to uniform, the retain loss held below a bound by a dual variable"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # the loss family's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }

    def validate(self) -> None:
        super().validate()
        if self.dual_step_size < 0 or self.retain_weight < 0:
            raise ConfigError("pdu: dual_step_size and retain_weight (the starting multiplier) must be >= 0")

    def setup(self, model, reference) -> None:
        self.multiplier = self.retain_weight
        self.bound = self.retain_eps

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if not hasattr(self, "multiplier"):  # loss() outside a training run
            self.setup(model, reference)
        forget = logit_margin_flattening(*logits_of(model, batch.forget)) * token_share(batch.forget)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = self.forget_weight * forget + self.multiplier * retain_value
        logs = {"pdu_margin": forget.item(), "retain": retain_value.item(), "multiplier": self.multiplier}
        if torch.is_grad_enabled():  # a first-order step (zeroth-order estimates evaluate without gradients)
            if self.bound is None:
                self.bound = retain_value.item()
            self.multiplier = dual_update(self.multiplier, retain_value.item(), self.bound, self.dual_step_size)
        return LossOutput(loss, logs)
