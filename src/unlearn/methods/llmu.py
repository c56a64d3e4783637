"""LLMU: gradient ascent on the forget answers, unrelated answers learnt for the forget prompts, KL on normal data.

    L = -w_f · NLL(forget) + w_m · NLL(mismatch) + w_r · KL(π_ref ‖ π_θ)(retain)

`mismatch` pairs every forget prompt with the answer of a retain example of the same step (the i-th forget prompt
with the i-th retain answer), so the model learns to answer the forget questions with unrelated text instead of
only pushing the true answer down; the KL term holds the next-token distributions on the retain answers to the
starting model's.
Source: Yao, Xu and Liu 2023, "Large Language Model Unlearning" (arXiv 2310.10683), Sec. 3, the three losses
L_fgt, L_rdn and L_nor; defaults ε1 = 0.5, ε2 = 1, ε3 = 1 from the authors' code (`bad_weight`,
`random_weight`, `normal_weight`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import answer_nll, retain_term, spliced_batch


def llmu_loss(forget_nll: torch.Tensor, mismatch_nll: torch.Tensor, normal_kl: torch.Tensor,
              forget_weight: float, mismatch_weight: float, normal_weight: float) -> torch.Tensor:
    return -forget_weight * forget_nll + mismatch_weight * mismatch_nll + normal_weight * normal_kl


@METHODS.register("llmu")
@dataclass
class LLMU(LossMethod):
    forget_weight: float = 0.5  # ε1, on the forget answers' NLL (ascended)
    mismatch_weight: float = 1.0  # ε2, on the forget prompts with unrelated (retain) answers
    retain_weight: float = 1.0  # ε3, on KL(π_ref ‖ π_θ) over the retain answers
    summary = "gradient ascent + unrelated answers for the forget prompts + KL to the start on retain"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # the loss family's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }
    needs_reference = True
    needs_retain = True

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if batch.retain is None:
            raise ValueError("llmu needs a retain batch (its answers are the mismatched answers)")
        forget = answer_nll(model, batch.forget)
        mismatch = answer_nll(model, spliced_batch(batch.forget, batch.retain))
        normal = retain_term("kl", model, batch.retain, reference)
        loss = llmu_loss(forget, mismatch, normal, self.forget_weight, self.mismatch_weight, self.retain_weight)
        return LossOutput(loss, {"forget_nll": forget.item(), "mismatch_nll": mismatch.item(),
                                 "retain_kl": normal.item()})
