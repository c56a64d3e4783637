"""MUDMAN: meta-unlearning with disruption masking and normalisation.

Each step, with θ the weights, θ_adv an adversary's copy (forked from θ every `fork_every` steps) and m a
running mean of retain gradients:
    1. retain:     g_r = ∇_θ R(retain batch);  m ← β m + (1 − β) g_r;  θ ← θ − η_r m
    2. meta:       at θ_adv, on the forget batch: g_u = ∇ L_u(θ_adv) and g_a = ∇ NLL(θ_adv);  θ_adv ← θ_adv − η_a g_a
                   (the unlearning gradient is taken where a relearning attack has moved the weights)
    3. masking:    g_u ← g_u ⊙ 1[sign(g_u) = sign(m)]   (only the coordinates where unlearning also helps retaining)
    4. normalised: θ ← θ − η g_u / ‖g_u‖   (‖·‖ the global norm of the unmasked g_u, all trainable tensors)
L_u = −mean over answer tokens of H(p_θ(·|x, y_<t)) (maximise the entropy of the answer's predictions).
η = train.lr; the method updates the weights itself (the loop's optimizer gets no gradient).
Source: Sondej, Yang, Kniejski, Windys 2025, "Robust LLM Unlearning with MUDMAN: Meta-Unlearning with Disruption
Masking And Normalization" (arXiv 2506.12484): Disruption Masking, normalised unlearning gradients, meta-learning
against a relearning adversary; neg-entropy forget loss; defaults after the authors' reference settings
(β = 0.9, η_a = 1e-3, η_r = 1e-3, fork every 32 steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.logprobs import IGNORE, nll, token_entropy
from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import logits_of, masked_token_mean, retain_term


def neg_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """−mean entropy of the next-token distributions at the answer positions (logits[t] predicts labels[t+1])."""
    mask = labels[:, 1:] != IGNORE
    entropy = token_entropy(logits[:, :-1])
    return -masked_token_mean(entropy, mask)


def disruption_mask(unlearn_grad: torch.Tensor, retain_momentum: torch.Tensor) -> torch.Tensor:
    """1 where the unlearning gradient and the retain gradients' running mean have the same sign, else 0."""
    return (unlearn_grad.sign() == retain_momentum.sign()).to(unlearn_grad.dtype)


def masked_normalised_update(grads: list[torch.Tensor], masks: list[torch.Tensor], lr: float) -> list[torch.Tensor]:
    """−lr · g ⊙ mask / ‖g‖ per tensor, the norm taken over every (unmasked) tensor together."""
    norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads)).clamp(min=1e-12)
    return [-lr * g * mask / norm for g, mask in zip(grads, masks, strict=True)]


@METHODS.register("mudman")
@dataclass
class MUDMAN(RetainTerm, LossMethod):
    retain_rate: float = 1e-3  # η_r: step size of the retain update (plain gradient step on the momentum)
    retain_momentum: float = 0.9  # β
    adversary_lr: float = 1e-3  # η_a: the simulated relearning attack's step size
    fork_every: int = 32  # steps between re-forking the adversary from the current weights
    retain_loss: str = "nll"  # nll | kl
    summary = "masked, normalised unlearning steps taken where a simulated relearning attack has moved the weights"
    benchmark_settings = {
        "demo": {"train.lr": 0.2, "method.retain_rate": 0.01},  # lr: the length of each normalised step
        # TOFU's 1e-5 is a rate for raw gradients; as the length of a normalised step it would move nothing
        "tofu": {"train.lr": 0.1},
    }
    default_lr = 1e-1  # η: the normalised step's length (source: the authors' unlearning_rate)

    def validate(self) -> None:
        super().validate()
        if self.fork_every < 1:
            raise ConfigError("mudman: fork_every must be at least 1")
        if not 0.0 <= self.retain_momentum < 1.0:
            raise ConfigError("mudman: retain_momentum must be in [0, 1)")

    def setup(self, model, reference) -> None:
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._momenta = [torch.zeros_like(p) for p in self._params]
        self._adversary: list[torch.Tensor] = []
        self._step = 0

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        """The forget objective alone (for checks and logs); training goes through `update`."""
        return LossOutput(neg_entropy(*logits_of(model, batch.forget)))

    def update(self, model, batch: StepBatch, reference, lr: float, anchor=None) -> LossOutput:
        """One MUDMAN step: changes the weights in place; returns the losses seen. `anchor`: (batch, weight) of
        the request's anchor data, whose KL to the model before unlearning joins the retain objective."""
        params = self._params
        retain = retain_term(self.retain_loss, model, batch.retain, reference)
        logs = {}
        if anchor is not None:
            anchor_value = retain_term("kl", model, anchor[0], reference)
            retain = retain + anchor[1] * anchor_value
            logs["anchor"] = anchor_value.item()
        retain_grads = torch.autograd.grad(retain, params, allow_unused=True)
        with torch.no_grad():
            for p, m, g in zip(params, self._momenta, retain_grads, strict=True):
                if g is not None:
                    m.mul_(self.retain_momentum).add_(g, alpha=1.0 - self.retain_momentum)
                p.sub_(self.retain_rate * m)
        if self._step % self.fork_every == 0:
            self._adversary = [p.detach().clone() for p in params]
        self._step += 1
        base = [p.data for p in params]
        try:
            for p, a in zip(params, self._adversary, strict=True):
                p.data = a
            logits, labels = logits_of(model, batch.forget)
            relearn, unlearn = nll(logits, labels), neg_entropy(logits, labels)
            relearn_grads = torch.autograd.grad(relearn, params, retain_graph=True, allow_unused=True)
            unlearn_grads = torch.autograd.grad(unlearn, params, allow_unused=True)
            with torch.no_grad():
                for a, g in zip(self._adversary, relearn_grads, strict=True):
                    if g is not None:
                        a.sub_(self.adversary_lr * g)
        finally:
            for p, b in zip(params, base, strict=True):
                p.data = b
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, unlearn_grads, strict=True)]
        masks = [disruption_mask(g, m) for g, m in zip(grads, self._momenta, strict=True)]
        with torch.no_grad():
            for p, delta in zip(params, masked_normalised_update(grads, masks, lr), strict=True):
                p.add_(delta)
        kept = sum(float(mask.mean()) for mask in masks) / len(masks)
        return LossOutput(unlearn.detach(), {"neg_entropy": unlearn.item(), "retain": retain.item(),
                                             "adversary_nll": relearn.item(), "kept": kept, **logs})
