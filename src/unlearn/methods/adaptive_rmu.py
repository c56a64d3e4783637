"""Adaptive RMU: RMU whose forget target scales with the frozen model's own activation norm.

At decoder layer l, each forget token's activation is pushed to β times the frozen model's activation norm at that
token along a fixed random unit direction u; retain activations stay where the frozen model had them:

    target_t = β · ‖h_ref^l(x_f)_t‖ · u
    L = mean_t ‖h_θ^l(x_f)_t − target_t‖² / d  +  α · mean_t ‖h_θ^l(x_r)_t − h_ref^l(x_r)_t‖² / d

RMU's fixed coefficient c must be tuned to each model's activation scale (and to the layer); the adaptive target
follows the scale by construction. Token masks, trained parameters (the MLP output projections of layers l−2..l)
and the retain term are RMU's.
Source: Dang, Le, Nguyen et al. 2025, "On Effects of Steering Latent Representation for Large Language Model
Unlearning" (AAAI 2025, arXiv 2408.06223), Adaptive RMU: the coefficient β‖h_frozen(x_f)‖.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TrainableConfig
from ..errors import ConfigError
from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import after_common_prefix, control_vector, hidden_at, masked_mse, rmu_trainable


def adaptive_targets(h_ref: torch.Tensor, direction: torch.Tensor, beta: float) -> torch.Tensor:
    """β · ‖h_ref_t‖ · u for every token t (h_ref: (B, T, d), u: (d,) of unit length)."""
    return beta * h_ref.norm(dim=-1, keepdim=True) * direction


@METHODS.register("adaptive_rmu")
@dataclass
class AdaptiveRMU(LossMethod):
    layer: int = 7
    beta: float = 5.0  # scale of the frozen activation norm
    alpha: float = 1200.0
    seed: int = 0
    summary = "RMU with each forget token's target scaled by the frozen model's activation norm there"
    benchmark_settings = {
        "demo": {"train.lr": 1e-3},  # RMU's demo rate, not tuned
        "tofu": {"train.lr": 1e-3},
    }
    needs_reference = True
    default_lr = 5e-5
    needs_retain = True

    def validate(self) -> None:
        if self.layer < 2:
            raise ConfigError("adaptive_rmu.layer must be at least 2 (layers layer-2..layer are trained)")
        if self.beta <= 0:
            raise ConfigError("adaptive_rmu.beta must be > 0")

    def trainable_override(self, n_layers: int) -> TrainableConfig | None:
        return rmu_trainable("adaptive_rmu", self.layer, n_layers)

    def setup(self, model, reference) -> None:
        self._direction = control_vector(model.config.hidden_size, 1.0, self.seed)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        f_mask = after_common_prefix(batch.forget["input_ids"], batch.forget["attention_mask"])
        with reference.active() as ref_model, torch.no_grad():
            h_ref_forget = hidden_at(ref_model, batch.forget, self.layer)
            h_ref_retain = hidden_at(ref_model, batch.retain, self.layer) if batch.retain is not None else None
        h_forget = hidden_at(model, batch.forget, self.layer)
        target = adaptive_targets(h_ref_forget, self._direction.to(h_forget), self.beta)
        forget = masked_mse(h_forget, target, f_mask)
        retain = torch.zeros((), device=h_forget.device)
        if h_ref_retain is not None:
            retain = masked_mse(hidden_at(model, batch.retain, self.layer), h_ref_retain, batch.retain["attention_mask"])
        loss = forget + self.alpha * retain
        return LossOutput(loss, {"rmu_forget": forget.item(), "rmu_retain": retain.item()})
