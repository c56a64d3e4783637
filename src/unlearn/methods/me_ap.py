"""ME+AP: maximum entropy on the forget answers, answer preservation on the retain questions.

    L_ME = mean_{forget answer positions t} KL(π_θ(·|x, y_<t) ‖ U)  =  log V − H(π_θ(·|x, y_<t))
    L_AP = −(1/β) · mean_{retain (x, y)} log σ(−β · (log π_θ(y_idk|x) − log π_θ(y|x)))
    L    = w_f · L_ME + w_r · NLL(retain) + w_ap · L_AP

ME drives the next-token distributions on the forget answers toward uniform (the model has no idea, rather than
a confident wrong answer); AP keeps the model from answering the retain questions with a refusal, preferring the
true answer y over y_idk, which is the request's refusal answer for a forget question put after the retain prompt.
Source: Yuan, Pang, Du, Chen et al. 2025, "A Closer Look at Machine Unlearning for Large Language Models"
(ICLR 2025, arXiv 2410.08109), Sec. 4: ME (untargeted unlearning) and AP (targeted unlearning); combining both
with the NLL retain term is this project's choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.logprobs import IGNORE, shift
from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import logits_of, masked_token_mean, retain_term, seq_logprob, spliced_batch, token_share


def max_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over counted positions of KL(p ‖ uniform) = Σ_v p_v log p_v + log V."""
    logits, labels = shift(logits, labels)
    mask = labels != IGNORE
    logp = torch.log_softmax(logits.float(), dim=-1)
    kl = (logp.exp() * logp).sum(dim=-1) + math.log(logits.shape[-1])
    return masked_token_mean(kl, mask)


def answer_preservation_loss(refusal_logp: torch.Tensor, answer_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """−(1/β) mean log σ(−β (log π(y_idk|x) − log π(y|x)))."""
    return -(1.0 / beta) * F.logsigmoid(-beta * (refusal_logp - answer_logp)).mean()


@METHODS.register("me_ap")
@dataclass
class MeAp(LossMethod):
    forget_weight: float = 1.0
    retain_weight: float = 1.0  # on NLL(retain)
    ap_weight: float = 1.0
    beta: float = 0.1
    summary = "forget answers' next-token distributions toward uniform; retain questions keep their answer over a refusal"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # the loss family's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }
    needs_retain = True
    needs_alternate_answers = True  # the refusal answers: y_idk of AP

    def validate(self) -> None:
        if self.beta <= 0:
            raise ConfigError("me_ap: beta must be > 0")

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if batch.retain is None or batch.forget_alt is None:
            raise ValueError("me_ap needs retain batches and refusal answers (forget_alt)")
        forget = max_entropy_loss(*logits_of(model, batch.forget)) * token_share(batch.forget)
        retain = retain_term("nll", model, batch.retain, reference)
        refusal = seq_logprob(model, spliced_batch(batch.retain, batch.forget_alt))
        preserve = answer_preservation_loss(refusal, seq_logprob(model, batch.retain), self.beta)
        loss = self.forget_weight * forget + self.retain_weight * retain + self.ap_weight * preserve
        return LossOutput(loss, {"me": forget.item(), "retain_nll": retain.item(), "ap": preserve.item()})
