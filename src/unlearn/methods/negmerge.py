"""NegMerge: several task vectors of the forget data, merged where they agree in sign, then negated.

    τ_k = θ_k − θ₀,  k = 0..K: θ₀ fine-tuned on the forget data (NLL); run 0 is the training loop's own (the
                     run's seed s and learning rate lr), run k ≥ 1 uses seed s + k and lr × lr_scales[k − 1]
    m   = 1[sign τ_0 = … = sign τ_K ≠ 0]     (elementwise)
    θ_u = θ₀ − α · m ⊙ mean_k τ_k

Elements on which the runs disagree are left at their starting values: only the change every fine-tuning makes
on the forget data is removed, so what depends on the run's hyperparameters (and touches other knowledge) is kept.
Source: Kim, Kim, Kim, Lee et al. 2025, "NegMerge: Consensual Weight Negation for Strong Machine Unlearning"
(arXiv 2410.05583), Sec. 3 (sign-consensus merging of task vectors from fine-tunings with varied
hyperparameters, then negation as in task arithmetic).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import forget_nll_output, retrain_from_start, trainable_snapshot


def consensual_mean(vectors: list[torch.Tensor]) -> torch.Tensor:
    """mean_k τ_k where every τ_k has the same non-zero sign, 0 elsewhere."""
    stacked = torch.stack(vectors)
    signs = torch.sign(stacked)
    agree = (signs == signs[0]).all(dim=0) & (signs[0] != 0)
    return stacked.mean(dim=0) * agree


@METHODS.register("negmerge")
@dataclass
class NegMerge(LossMethod):
    lr_scales: list[float] = field(default_factory=lambda: [0.5, 2.0])  # one more fine-tuning per entry
    alpha: float = 1.0
    family = "weights"
    summary = "several fine-tunings on the forget data; negate their change where all agree in sign"
    benchmark_settings = {
        "demo": {"train.lr": 1e-4, "train.early_stop": False, "train.max_steps": 20},  # as task_vector, not tuned
        "tofu": {"train.lr": 1e-5},
    }

    def validate(self) -> None:
        if not self.lr_scales or any(s <= 0 for s in self.lr_scales):
            raise ConfigError("negmerge: lr_scales needs one or more positive factors (one more fine-tuning each)")
        if self.alpha <= 0:
            raise ConfigError("negmerge: alpha must be > 0")

    def setup(self, model, reference) -> None:
        self._start = trainable_snapshot(model)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        return forget_nll_output(model, batch.forget)

    def after_training(self, model, tokenizer, request, train_cfg, progress: bool = True):
        """The other fine-tunings from θ₀, then θ₀ − α · consensual mean of the task vectors."""
        from ..train.loop import TrainResult

        began = time.perf_counter()
        start = self._start
        runs, steps = [[p.detach().clone() for p, _ in start]], 0
        learner = NegMergeFineTune()
        for k, scale in enumerate(self.lr_scales, start=1):
            cfg = dataclasses.replace(train_cfg, seed=train_cfg.seed + k, lr=(train_cfg.lr or self.default_lr) * scale)
            values, result = retrain_from_start(model, start, learner, tokenizer, request, cfg, progress,
                                                f"negmerge: fine-tuning {k + 1} of {len(self.lr_scales) + 1}")
            runs.append(values)
            steps += result.steps
        with torch.no_grad():
            for i, (p, value) in enumerate(start):
                merged = consensual_mean([run[i].to(value) - value for run in runs])
                p.copy_((value - self.alpha * merged).to(p))
        self._start = []
        return TrainResult(steps=steps, seconds=time.perf_counter() - began)


@dataclass
class NegMergeFineTune(LossMethod):
    """The later fine-tunings' loss: NLL on the forget data (not registered: a stage of negmerge)."""

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        return forget_nll_output(model, batch.forget)
