"""Continual-unlearning techniques: how each request's weight update is trained, stored and combined.

Every technique stores a request's update as a checkpoint (dense delta or LoRA factors) and serves
base + all applied updates; they differ in where training starts and what may be undone later.

- sequential   plain sequential fine-tuning (the baseline of continual-unlearning studies): each request
               trains the current model; older checkpoints are folded into one delta (retention), so a
               single request cannot be taken out again.
- lora         one LoRA adapter per request, trained on the current model (Hu et al., 2022). With
               lora_merge, older adapters are folded like `sequential`; without, every adapter stays a
               separate file and can be removed. lora_orthogonal > 0 adds the O-LoRA penalty against
               earlier adapters (requests/orthogonal.py).
- task_vector  each request's update is trained from the base model alone and kept apart (a task vector,
               Ilharco et al., 2023): updates do not build on one another, the served model is their sum,
               and any one of them can be removed again (`unlearn remove`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import SequenceConfig
from ..errors import ConfigError

TECHNIQUES = ("sequential", "lora", "task_vector")


@dataclass(frozen=True)
class Traits:
    trains_from_base: bool  # the update is trained from the base model, not the current one
    lora: bool  # training uses a LoRA adapter whatever trainable.mode says
    foldable: bool  # retention may fold old checkpoints into one
    removable: bool  # one request's update can be removed later


def traits(cfg: SequenceConfig) -> Traits:
    if cfg.technique not in TECHNIQUES:
        raise ConfigError(f"sequence.technique '{cfg.technique}' is unknown; use one of {', '.join(TECHNIQUES)}")
    if cfg.keep_checkpoints < 0:
        raise ConfigError("sequence.keep_checkpoints must be 0 or more")
    if cfg.lora_orthogonal < 0:
        raise ConfigError("sequence.lora_orthogonal must be 0 or more")
    if cfg.lora_orthogonal > 0 and cfg.technique != "lora":
        raise ConfigError("sequence.lora_orthogonal needs sequence.technique=lora")
    if not 0 <= cfg.utility_tolerance < 1:
        raise ConfigError("sequence.utility_tolerance must be in [0, 1)")
    if cfg.technique == "sequential":
        return Traits(trains_from_base=False, lora=False, foldable=True, removable=False)
    if cfg.technique == "lora":
        return Traits(trains_from_base=False, lora=True, foldable=cfg.lora_merge, removable=not cfg.lora_merge)
    return Traits(trains_from_base=True, lora=False, foldable=False, removable=True)
