"""Inverted hinge loss (IHL): at every answer token, push the true token below the model's best other token.

L_f = mean over forget answer tokens of  1 + p_t(y_t) − max_{v ≠ y_t} p_t(v),   p_t = softmax(z_t);
L = w_f * L_f + w_r * R(retain). The loss lies in [0, 2] and stops pulling once the true token has lost its lead
to the next most likely one, so unlike gradient ascent it does not run away, and the probability it takes from
the true token goes to a fluent alternative rather than to every token alike.
Source: Cha, Cho, Hwang and Lee 2025, "Towards Robust and Parameter-Efficient Knowledge Unlearning for LLMs"
(ICLR 2025, arXiv 2408.06621). Defaults w_f = 1, w_r = 1, R = NLL (the paper pairs IHL with a retain term; its
Fisher-weighted LoRA initialisation is not part of this method).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.logprobs import IGNORE
from .base import METHODS, LossMethod, LossOutput, OptionalRetain, StepBatch
from .common import logits_of, masked_token_mean, token_share, with_optional_retain


def inverted_hinge_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the answer positions of 1 + p(true token) − max over the other tokens of p."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE
    safe = labels.masked_fill(~mask, 0).unsqueeze(-1)
    probs = torch.softmax(logits, dim=-1)
    p_true = probs.gather(-1, safe).squeeze(-1)
    p_best_other = probs.scatter(-1, safe, -1.0).max(dim=-1).values  # the true token cannot be its own rival
    hinge = 1.0 + p_true - p_best_other
    return masked_token_mean(hinge, mask)


@METHODS.register("ihl")
@dataclass
class IHL(OptionalRetain, LossMethod):
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    retain_loss: str = "nll"  # nll | kl
    summary = "inverted hinge: each true answer token pushed below the model's next most likely token"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # the loss family's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        forget = inverted_hinge_loss(*logits_of(model, batch.forget)) * token_share(batch.forget)
        loss, retain_value = with_optional_retain(forget, self.forget_weight, self.retain_weight, self.retain_loss,
                                                  model, batch.retain, reference)
        return LossOutput(loss, {"ihl": forget.item(), "retain": retain_value.item()})
