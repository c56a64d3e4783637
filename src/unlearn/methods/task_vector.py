"""Task-vector negation: fine-tune on the forget data, then move the weights the same way back and beyond.

    θ_ft = θ₀ fine-tuned on the forget data (NLL, the run's training budget)
    τ    = θ_ft − θ₀                       (the forget data's task vector)
    θ_u  = θ₀ − α · τ                      (applied to the trained parameters)

The fine-tuning amplifies what the model knows of the forget data; subtracting that direction from the starting
weights removes it, without a loss that runs away (no gradient ascent).
Source: Ilharco, Ribeiro, Wortsman, Gururangan, Schmidt, Hajishirzi and Farhadi 2023, "Editing Models with Task
Arithmetic" (ICLR 2023), Sec. 3 (forgetting by negation); an unlearning baseline of MUSE (Shi et al. 2024,
arXiv 2407.06460), α = 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import forget_nll_output, trainable_snapshot


def negated(start: torch.Tensor, tuned: torch.Tensor, alpha: float) -> torch.Tensor:
    """θ₀ − α (θ_ft − θ₀)."""
    return start - alpha * (tuned - start)


@METHODS.register("task_vector")
@dataclass
class TaskVector(LossMethod):
    alpha: float = 1.0  # how far past the starting weights to move against the task vector
    family = "weights"
    summary = "fine-tune on the forget data, then subtract that change from the starting weights (x alpha)"
    benchmark_settings = {
        # the fine-tuning must run its budget: an early stop on forgotten probes would never fire
        "demo": {"train.lr": 1e-4, "train.early_stop": False, "train.max_steps": 20},
        "tofu": {"train.lr": 1e-5},
    }

    def validate(self) -> None:
        if self.alpha <= 0:
            raise ConfigError("task_vector: alpha must be > 0")

    def setup(self, model, reference) -> None:
        self._start = trainable_snapshot(model)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        return forget_nll_output(model, batch.forget)

    def after_training(self, model, tokenizer, request, train_cfg, progress: bool = True):
        """Replace each trained parameter by θ₀ − α (θ_ft − θ₀)."""
        from ..train.loop import TrainResult

        start_time = time.perf_counter()
        with torch.no_grad():
            for p, start in self._start:
                p.copy_(negated(start.to(p), p, self.alpha))
        self._start = []
        return TrainResult(steps=0, seconds=time.perf_counter() - start_time)
