"""IdkDPO: prefer a refusal ("I don't know") over the forget answer, DPO-style.

L = -(2/beta) * mean_i log sigmoid(beta * [(log pi(y_idk) - log pi_ref(y_idk)) - (log pi(y_f) - log pi_ref(y_f))])
plus w_r * R(retain). The 2/beta scale (OpenUnlearning) leaves the minimiser of DPO unchanged.
Source: Rafailov et al. 2023 (DPO); used for unlearning with refusal answers in TOFU (Maini et al.
2024) and NPO (Zhang et al. 2024). Defaults beta = 0.1, w_r = 1, R = NLL: OpenUnlearning DPO config.
Refusal answers are the project's own (`unlearn.data.refusals`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.logprobs import sequence_logprob
from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import reference_logits, retain_term, seq_logprob


def dpo_loss(
    win_logp: torch.Tensor, win_ref: torch.Tensor, lose_logp: torch.Tensor, lose_ref: torch.Tensor, beta: float
) -> torch.Tensor:
    margin = (win_logp - win_ref) - (lose_logp - lose_ref)
    return -(2.0 / beta) * F.logsigmoid(beta * margin).mean()


def preference_over_forget(model, batch: StepBatch, reference, beta: float) -> torch.Tensor:
    """dpo_loss with the batch's alternate answers (`forget_alt`) preferred over its forget answers."""
    win, lose = batch.forget_alt, batch.forget
    win_ref = sequence_logprob(*reference_logits(reference, win))
    lose_ref = sequence_logprob(*reference_logits(reference, lose))
    return dpo_loss(seq_logprob(model, win), win_ref, seq_logprob(model, lose), lose_ref, beta)


@METHODS.register("idk_dpo")
@dataclass
class IdkDPO(RetainTerm, LossMethod):
    beta: float = 0.1
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    retain_loss: str = "nll"  # nll | kl
    summary = "DPO preferring a refusal over the forget answer, with a retain term"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},
        "tofu": {"train.lr": 1e-5},
    }
    needs_reference = True
    needs_alternate_answers = True

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if batch.forget_alt is None:
            raise ValueError("idk_dpo needs refusal answers (forget_alt) for every forget example")
        forget = preference_over_forget(model, batch, reference, self.beta)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = self.forget_weight * forget + self.retain_weight * retain_value
        return LossOutput(loss, {"dpo": forget.item(), "retain": retain_value.item()})
