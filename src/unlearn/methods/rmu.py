"""Representation Misdirection for Unlearning (RMU).

At decoder layer l, push forget activations towards a fixed random direction and keep retain
activations where the frozen model had them:
  L = mean_t ||h_theta^l(x_f)_t - c*u||^2 / d  +  alpha * mean_t ||h_theta^l(x_r)_t - h_ref^l(x_r)_t||^2 / d
with u uniform in [0,1)^d normalised to unit length and c the steering coefficient. The forget mean
runs over the non-padding tokens after the forget batch's longest common prefix (on chat-formatted
QA data that prefix is the template's system prompt, shared with the retain data, which the retain
term anchors; raw texts have no common prefix, so every token counts, as in WMDP); the retain mean
runs over all non-padding tokens.
Only the MLP output projections of layers l-2..l are trained.
Source: Li et al. 2024 "The WMDP Benchmark", Algorithm 1. Defaults layer 7, layers 5-7 down_proj,
c = 6.5, alpha = 1200, lr 5e-5 (the paper's Zephyr-7B setting; c depends on the model's activation
scale, see docs/paper_index.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TrainableConfig
from ..errors import ConfigError
from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import after_common_prefix, control_vector, hidden_at, masked_mse, rmu_trainable


@METHODS.register("rmu")
@dataclass
class RMU(LossMethod):
    layer: int = 7
    steering_coeff: float = 6.5
    alpha: float = 1200.0
    seed: int = 0
    summary = "misdirect forget activations at one layer to a random vector; anchor retain activations"
    benchmark_settings = {
        # measured on the demo (docs/notes/demo-settings.md "RMU's steering coefficient on the 135M model"): c 150 and 400
        # leave the person answered or ranked first; 800 removes it (likelihood top-1 0.27), at the price of fluency
        "demo": {"train.lr": 1e-3, "method.steering_coeff": 800.0},
        "tofu": {"train.lr": 1e-3, "method.steering_coeff": 150.0},
    }
    needs_reference = True
    default_lr = 5e-5
    needs_retain = True

    def validate(self) -> None:
        if self.layer < 2:
            raise ConfigError("rmu.layer must be at least 2 (layers layer-2..layer are trained)")

    def trainable_override(self, n_layers: int) -> TrainableConfig | None:
        return rmu_trainable("rmu", self.layer, n_layers)

    def setup(self, model, reference) -> None:
        self._control = control_vector(model.config.hidden_size, self.steering_coeff, self.seed)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        f_mask = after_common_prefix(batch.forget["input_ids"], batch.forget["attention_mask"])
        h_forget = hidden_at(model, batch.forget, self.layer)
        forget = masked_mse(h_forget, self._control.to(h_forget), f_mask)
        retain = torch.zeros((), device=h_forget.device)
        if batch.retain is not None:
            with reference.active() as ref_model, torch.no_grad():
                h_ref = hidden_at(ref_model, batch.retain, self.layer)
            h_retain = hidden_at(model, batch.retain, self.layer)
            retain = masked_mse(h_retain, h_ref, batch.retain["attention_mask"])
        loss = forget + self.alpha * retain
        return LossOutput(loss, {"rmu_forget": forget.item(), "rmu_retain": retain.item()})
