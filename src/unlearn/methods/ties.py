"""TIES merge of several unlearned models: the methods' weight changes trimmed, signs elected, agreeing parts
averaged.

    τ_k  = θ_k − θ₀, θ_k: θ₀ unlearned with methods[k] (methods[0] in the training loop, the others afterwards
           from θ₀ with the same training settings and no early stop)
    trim: keep the `density` share of each τ_k's entries largest in magnitude (per parameter tensor), zero the rest
    elect: s = sign(Σ_k trim(τ_k))
    merge: τ = Σ_k trim(τ_k)·1[sign = s] / #{k: sign(trim(τ_k)) = s}     (the disjoint mean)
    θ_u  = θ₀ + λ · τ

Merging keeps what the methods agree on removing and drops the small, conflicting changes that each method
makes elsewhere, which is where they lose unrelated knowledge.
Source: Yadav, Tam, Choshen, Raffel and Bansal 2023, "TIES-Merging: Resolving Interference When Merging Models"
(NeurIPS 2023), Sec. 3 (trim, elect sign, disjoint merge; top-20% density and λ = 1 in their experiments).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from .base import METHODS, LossMethod, LossOutput, StepBatch, make_method
from .common import retrain_from_start, trainable_snapshot, trim


def ties_merge(vectors: list[torch.Tensor], density: float) -> torch.Tensor:
    """Trim each vector, elect the sign of the trimmed sum, average the entries that agree with it."""
    trimmed = torch.stack([trim(v, density) for v in vectors])
    elected = torch.sign(trimmed.sum(dim=0))
    agree = (torch.sign(trimmed) == elected) & (trimmed != 0)
    return (trimmed * agree).sum(dim=0) / agree.sum(dim=0).clamp(min=1)


@METHODS.register("ties")
@dataclass
class Ties(LossMethod):
    methods: list[str] = field(default_factory=lambda: ["npo", "grad_diff"])  # the unlearning runs to merge
    method_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per method name: its settings
    density: float = 0.2
    scale: float = 1.0  # λ
    family = "weights"
    summary = "unlearn with several methods, TIES-merge their weight changes (trim, elect sign, disjoint mean)"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.method_settings.npo.retain_weight": 20.0,
                 "method.method_settings.grad_diff.retain_weight": 20.0},  # the methods' own demo settings
        "tofu": {"train.lr": 1e-5},
    }

    def __post_init__(self) -> None:
        if len(self.methods) < 2:
            raise ConfigError("ties: methods needs two or more method names to merge")
        if "ties" in self.methods:
            raise ConfigError("ties: cannot merge itself")
        unknown = set(self.method_settings) - set(self.methods)
        if unknown:
            raise ConfigError(f"ties: method_settings names {sorted(unknown)}, not in methods {self.methods}")
        self.runs = [make_method({"name": name, **self.method_settings.get(name, {})}) for name in self.methods]

    def validate(self) -> None:
        if not 0 < self.density <= 1:
            raise ConfigError(f"ties: density must be in (0, 1], got {self.density}")
        if any(getattr(run, "after_training", None) is not None for run in self.runs):
            raise ConfigError("ties: merge loss methods only (a method with a second stage cannot be merged)")

    # the training loop runs the first method: its needs and its loss
    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.runs[0].needs_reference

    @property
    def needs_retain(self) -> bool:  # type: ignore[override]
        return self.runs[0].needs_retain

    @property
    def needs_alternate_answers(self) -> bool:  # type: ignore[override]
        return self.runs[0].needs_alternate_answers

    @property
    def default_lr(self) -> float:  # type: ignore[override]
        return self.runs[0].default_lr

    def setup(self, model, reference) -> None:
        self._start = trainable_snapshot(model)
        self.runs[0].setup(model, reference)

    def before_training(self, model, tokenizer, request, train_cfg, progress: bool = True) -> None:
        from ..unlearner import prepare_method

        prepare_method(self.runs[0], model, tokenizer, request, train_cfg, progress)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        return self.runs[0].loss(model, batch, reference)

    def after_training(self, model, tokenizer, request, train_cfg, progress: bool = True):
        """The other methods from θ₀, then θ₀ + λ · TIES merge of every method's change."""
        from ..train.loop import TrainResult

        began = time.perf_counter()
        start = self._start
        results, steps = [[p.detach().clone() for p, _ in start]], 0
        for name, run in zip(self.methods[1:], self.runs[1:], strict=True):
            values, result = retrain_from_start(model, start, run, tokenizer, request, train_cfg, progress,
                                                f"ties: unlearning with {name}")
            results.append(values)
            steps += result.steps
        with torch.no_grad():
            for i, (p, value) in enumerate(start):
                merged = ties_merge([r[i].to(value) - value for r in results], self.density)
                p.copy_((value + self.scale * merged).to(p))
        self._start = []
        return TrainResult(steps=steps, seconds=time.perf_counter() - began)
