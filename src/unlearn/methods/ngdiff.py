"""NGDiff: gradient difference with each task's gradient normalised, so no retain weight is tuned by hand.

    d = ∇NLL(retain) / ‖∇NLL(retain)‖ − ∇NLL(forget) / ‖∇NLL(forget)‖

taken as the gradient of the surrogate  L = NLL(retain) / ‖g_r‖ − NLL(forget) / ‖g_f‖  with both norms held fixed
(computed by two extra backward passes each step), so the run's optimizer and schedule apply as for any loss
method. Whichever task's gradient is small still moves the weights as much as the other: forgetting cannot swamp
retaining, nor the reverse.
Source: Bu, Jin, Vinzamuri, Ramakrishna, Chang, Cevher and Hong 2024, "Unlearning as multi-task optimization: a
normalized gradient difference approach with an adaptive learning rate" (arXiv 2410.22086), Eq. (4) (the
normalised direction). Their automatic learning rate (a generalised-Newton step size) is not implemented: the
learning rate is the run's `train.lr`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import answer_nll


def gradient_norm(value: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """‖∇value‖ over `params` (the graph is kept for the step's own backward pass)."""
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))


def normalized_difference(forget: torch.Tensor, retain: torch.Tensor, forget_norm: torch.Tensor,
                          retain_norm: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """retain / ‖g_r‖ − forget / ‖g_f‖, the norms detached: its gradient is g_r/‖g_r‖ − g_f/‖g_f‖."""
    return retain / (retain_norm.detach() + eps) - forget / (forget_norm.detach() + eps)


@METHODS.register("ngdiff")
@dataclass
class NGDiff(LossMethod):
    summary = "gradient difference with the forget and retain gradients each normalised (no retain weight)"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5},  # the loss family's demo rate, not tuned
        "tofu": {"train.lr": 1e-5},
    }
    needs_retain = True

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if batch.retain is None:
            raise ValueError("ngdiff needs a retain batch")
        if not torch.is_grad_enabled():
            raise ConfigError("ngdiff normalises gradients: it needs first-order steps (train.optimizer adamw, sgd "
                              "or sign)")
        forget = answer_nll(model, batch.forget)
        retain = answer_nll(model, batch.retain)
        params = [p for p in model.parameters() if p.requires_grad]
        forget_norm, retain_norm = gradient_norm(forget, params), gradient_norm(retain, params)
        loss = normalized_difference(forget, retain, forget_norm, retain_norm)
        return LossOutput(loss, {"forget_nll": forget.item(), "retain_nll": retain.item(),
                                 "forget_grad_norm": forget_norm.item(), "retain_grad_norm": retain_norm.item()})
