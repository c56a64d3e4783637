"""IdkNLL: fine-tune the forget questions to a refusal ("I don't know"), keeping the retain answers.

    L = NLL(x_f, y_idk) + w_r · R(retain)

The forget answers themselves are never pushed down: the model learns another answer for those questions, the
preference-free baseline that IdkDPO extends with a term against the original answer.
Source: Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs" (arXiv 2401.06121), Sec. 5
("Preference Optimization": refusal answers for the forget questions, a retain loss); w_r = 1 and R = NLL as
there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import answer_nll, retain_term


def idk_nll_loss(refusal_nll: torch.Tensor, retain_value: torch.Tensor, retain_weight: float) -> torch.Tensor:
    return refusal_nll + retain_weight * retain_value


@METHODS.register("idk_nll")
@dataclass
class IdkNLL(RetainTerm, LossMethod):
    retain_weight: float = 1.0
    retain_loss: str = "nll"  # nll | kl
    summary = "fine-tune the forget questions to a refusal answer (+ retain term)"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # the loss family's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }
    needs_alternate_answers = True

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if batch.forget_alt is None:
            raise ValueError("idk_nll needs refusal answers (forget_alt) for every forget example")
        refusal = answer_nll(model, batch.forget_alt)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = idk_nll_loss(refusal, retain_value, self.retain_weight)
        return LossOutput(loss, {"refusal_nll": refusal.item(), "retain": retain_value.item()})
