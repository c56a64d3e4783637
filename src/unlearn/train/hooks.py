"""Optional parts of training, kept out of the loop: how each step's retain examples are drawn, and stages
that run after the loop. The loop (train/loop.py) only calls them; `hooks_from_config` builds them from the
train settings:

    train.retain_similar = m > 0   ->  SimilarRetain: m of each step's retain examples from the forget items'
                                       pools of similar retain items (train/similar.py)
    train.repair_steps = n > 0     ->  Repair: up to n retain/anchor-only steps after an early stop
                                       (train/repair.py)

A caller with its own needs passes `train(..., hooks=TrainHooks(...))`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..config import TrainConfig
from ..errors import ConfigError


class RetainSampler(Protocol):
    def picks(self, size: int, forget_indices: list[int], generator: torch.Generator) -> list[int]:
        """Indices into the retain examples for one micro-batch whose forget examples are `forget_indices`."""
        ...


@dataclass(frozen=True)
class UniformRetain:
    """Retain examples drawn uniformly with replacement (the default)."""

    n_retain: int

    def picks(self, size: int, forget_indices: list[int], generator: torch.Generator) -> list[int]:
        return torch.randint(self.n_retain, (size,), generator=generator).tolist()


@dataclass
class LoopState:
    """What a stage after the loop may use: the prepared model and its parameters, the run's inputs, the
    accelerator, the snapshot buffer (shaped like `params`), the learning rate, the progress bar and the result
    it may add to."""

    model: Any
    method: Any
    data: Any
    cfg: TrainConfig
    pad_id: int
    reference: Any
    probe_check: Callable[[object], float] | None
    accelerator: Any
    params: list
    snapshot: list[torch.Tensor]
    lr: float
    bar: Any
    result: Any


@dataclass
class TrainHooks:
    retain_sampler: RetainSampler | None = None  # None: uniform
    after_training: Sequence[Callable[[LoopState], None]] = field(default_factory=list)


def hooks_from_config(cfg: TrainConfig, method, data, probe_check) -> TrainHooks:
    """The hooks the train settings ask for; a setting that cannot apply to this run is an error here,
    before any step."""
    from .repair import Repair
    from .similar import SimilarRetain

    if cfg.retain_similar < 0:
        raise ConfigError("train.retain_similar must be 0 (retain examples drawn uniformly) or positive")
    if cfg.repair_steps < 0:
        raise ConfigError("train.repair_steps must be 0 (off) or positive")
    hooks = TrainHooks()
    if cfg.retain_similar and data.retain:
        hooks.retain_sampler = SimilarRetain.of(data.forget, data.retain, cfg.retain_similar)
    if cfg.repair_steps:
        can_repair = (data.retain and getattr(method, "retain_weight", 1.0) > 0) or data.uses_anchor(cfg)
        if probe_check is None or not can_repair:
            raise ConfigError("train.repair_steps needs forget probes checked while repairing (train.early_stop and "
                              "probes.forget in the request) and retain data with a retain weight, or anchor data, "
                              "to repair with")
        hooks.after_training = [Repair(cfg.repair_steps)]
    return hooks
