"""JensUn: the Jensen-Shannon divergence as the forget and the retain objective.

L = w_f * mean_t JSD( p_theta(.|x, r_<t) || onehot(r_t) )          over the tokens of a refusal answer r
  + w_r * mean_t JSD( p_theta(.|x, y_<t) || p_ref(.|x, y_<t) )      over the retain answers' tokens

with JSD(P||Q) = 1/2 KL(P||M) + 1/2 KL(Q||M), M = (P+Q)/2, bounded by ln 2. Against a one-hot target
on token k it has the closed form

    JSD(p || e_k) = 1/2 [ (1 - p_k) ln 2 + p_k ln(2 p_k / (1 + p_k)) + ln(2 / (1 + p_k)) ],

0 at p_k = 1 and ln 2 at p_k = 0: the forget gradient stays bounded, where gradient ascent's grows without
limit, which is why the forget answers can be pushed to the refusal without the model collapsing.
Source: Singh, Müller, Croce, Hein 2025, "Unlearning That Lasts: Utility-Preserving, Robust, and Almost
Irreversible Forgetting in LLMs" (arXiv 2509.02820), Sec. 3. Weights w_f = w_r = 1 (ours; the paper tunes
them); refusal answers are the project's own (`unlearn.data.refusals`), as for idk_dpo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.logprobs import IGNORE, shift
from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import logits_of, masked_token_mean, reference_logits, retain_term, token_share

LN2 = math.log(2.0)


def jsd_to_target(p_target: torch.Tensor) -> torch.Tensor:
    """JSD(p || e_k) from p_k, the probability the model gives the target token (elementwise)."""
    p = p_target.clamp(0.0, 1.0)
    return 0.5 * ((1 - p) * LN2 + torch.special.xlogy(p, 2 * p / (1 + p)) + torch.log(2 / (1 + p)))


def jsd(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """JSD(P || Q) over the last dimension from log-probabilities; 0 <= JSD <= ln 2."""
    p, q = logp.exp(), logq.exp()
    log_m = torch.logaddexp(logp, logq) - LN2
    kl_pm = torch.where(p > 0, p * (logp - log_m), torch.zeros_like(p)).sum(-1)
    kl_qm = torch.where(q > 0, q * (logq - log_m), torch.zeros_like(q)).sum(-1)
    return 0.5 * (kl_pm + kl_qm)


def forget_jsd(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the counted answer tokens of JSD(model's next-token distribution || the answer token)."""
    logits, labels = shift(logits, labels)
    mask = labels != IGNORE
    logp = torch.log_softmax(logits.float(), dim=-1)
    p_target = logp.gather(-1, labels.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1).exp()
    return masked_token_mean(jsd_to_target(p_target), mask)


def retain_jsd(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the counted answer positions of JSD(model || reference) of the next-token distributions."""
    logits, labels = shift(logits, labels)
    ref_logits = ref_logits[:, :-1, :]
    mask = labels != IGNORE
    values = jsd(torch.log_softmax(logits.float(), dim=-1), torch.log_softmax(ref_logits.float(), dim=-1))
    return masked_token_mean(values, mask)


RETAIN_LOSSES = ("jsd", "nll", "kl")


@METHODS.register("jensun")
@dataclass
class JensUn(LossMethod):
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    retain_loss: str = "jsd"  # jsd (the paper's) | nll | kl
    summary = "Jensen-Shannon divergence to a refusal on forget, to the starting model on retain"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # at 1e-4 the other people drop to 0.72
        "tofu": {"train.lr": 1e-5},
    }
    needs_reference = True
    needs_retain = True
    needs_alternate_answers = True

    def validate(self) -> None:
        if self.retain_loss not in RETAIN_LOSSES:
            raise ConfigError(f"retain_loss '{self.retain_loss}' is unknown; use one of {', '.join(RETAIN_LOSSES)}")

    def retain_value(self, model, retain, reference) -> torch.Tensor:
        if retain is None or self.retain_loss != "jsd":
            return retain_term("nll" if self.retain_loss == "jsd" else self.retain_loss, model, retain, reference)
        ref, _ = reference_logits(reference, retain)
        logits, labels = logits_of(model, retain)
        return retain_jsd(logits, ref, labels) * token_share(retain)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if batch.forget_alt is None:
            raise ValueError("jensun needs refusal answers (forget_alt) for every forget example")
        forget = forget_jsd(*logits_of(model, batch.forget_alt)) * token_share(batch.forget_alt)
        retain_value = self.retain_value(model, batch.retain, reference)
        loss = self.forget_weight * forget + self.retain_weight * retain_value
        return LossOutput(loss, {"jsd_forget": forget.item(), "retain": retain_value.item()})
