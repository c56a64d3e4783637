"""Orthogonality between a request's new LoRA adapter and the adapters of earlier requests.

O-LoRA (Wang et al., 2023, "Orthogonal Subspace Learning for Language Model Continual Learning"): the
loss gains  lambda * sum_modules sum_earlier ||A_new A_earlier^T||_F^2,  pushing each new adapter's
input subspace (the rows of its A factor) away from the subspaces earlier requests already used, so a
later request disturbs earlier ones less.
"""

from __future__ import annotations

import torch

from ..methods.base import LossOutput


def orthogonality_penalty(current_a: dict[str, torch.Tensor], earlier_a: dict[str, list[torch.Tensor]]) -> torch.Tensor:
    """sum over modules and earlier adapters of ||A_new A_earlier^T||_F^2 (0 when there is nothing earlier)."""
    total = None
    for name, a_new in current_a.items():
        for a_old in earlier_a.get(name, ()):
            term = (a_new @ a_old.to(a_new.device, a_new.dtype).T).pow(2).sum()
            total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


def current_lora_a(peft_model) -> dict[str, torch.Tensor]:
    """Base parameter name -> the live A factor (with gradients) of a peft model's adapter."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and module.lora_A:
            (adapter,) = list(module.lora_A)
            out[name.removeprefix("module.").removeprefix("base_model.model.") + ".weight"] = module.lora_A[adapter].weight
    return out


class OrthogonalToEarlier:
    """A loss method plus the orthogonality penalty; every other attribute is the wrapped method's."""

    def __init__(self, method, earlier_a: dict[str, list[torch.Tensor]], weight: float):
        self.wrapped_method = method
        self.earlier_a = earlier_a
        self.weight = weight

    def __getattr__(self, name):
        return getattr(self.wrapped_method, name)

    def wrapper_settings(self) -> dict:
        return {"lora_orthogonal": self.weight}

    def loss(self, model, batch, reference) -> LossOutput:
        out = self.wrapped_method.loss(model, batch, reference)
        penalty = orthogonality_penalty(current_lora_a(model), self.earlier_a).to(out.loss.device)
        return LossOutput(out.loss + self.weight * penalty, {**out.logs, "orthogonality": float(penalty.detach())})
