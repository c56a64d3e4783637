"""UNDO: unlearn, noise, distill on outputs.

1. Unlearn with a base method (any registered loss method; its loss drives the training loop) -> teacher θ_u.
2. Noise the trainable parameters toward a fresh initialisation:  θ_s = (1 − α) θ_u + α θ_init,
   θ_init ~ N(0, σ²) for matrices (σ = the model's initializer_range), 1 for norm weights, 0 for other vectors.
3. Distill the teacher's outputs into the noised copy:
   L = mean over answer positions of KL(p_θu(· | x, y_<t) ‖ p_θs(· | x, y_<t)) on the distillation data (the
   request's retain and anchor items, whole answers, and the built-in general-knowledge replay set), for
   `distill_steps` steps; with `distill_prompts` > 0 also on that many built-in broad prompts, answered by θ_u.
The noise destroys what the weights still hold beyond the teacher's behaviour; distillation gives back only the
behaviour shown on the distillation data, so knowledge the teacher merely hides is not copied.
Source: Lee et al. 2025, "Distillation Robustifies Unlearning" (arXiv 2506.06278), Sec. 4 (UNDO: α interpolates
toward a random initialisation; larger α trades compute for robustness to relearning).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from .base import METHODS, LossMethod, LossOutput, StepBatch, make_method
from .common import kl_on_answers, logits_of, own_answers, reference_logits


def noised(weight: torch.Tensor, fresh: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 − α) θ + α θ_init."""
    return (1.0 - alpha) * weight + alpha * fresh


def fresh_init(name: str, like: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """A newly initialised value for a parameter: N(0, std²) for matrices, ones for norm weights, zeros else."""
    if like.dim() >= 2:
        return torch.randn(like.shape, generator=generator, dtype=torch.float32).mul_(std).to(like)
    if "norm" in name.lower() and name.endswith("weight"):
        return torch.ones_like(like)
    return torch.zeros_like(like)


def distill_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student), averaged over answer positions."""
    return kl_on_answers(logits, teacher_logits, labels)


@dataclass
class Distill(LossMethod):
    """The distillation stage's loss: the batch's `forget` slot carries the distillation data."""

    needs_reference = True

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        teacher, _ = reference_logits(reference, batch.forget)
        logits, labels = logits_of(model, batch.forget)
        value = distill_loss(logits, teacher, labels)
        return LossOutput(value, {"distill": value.item()})


@METHODS.register("undo")
@dataclass
class Undo(LossMethod):
    base: str = "npo"  # the unlearning method run first (its settings: base_settings)
    base_settings: dict[str, Any] = field(default_factory=dict)
    alpha: float = 0.5  # share of a fresh initialisation mixed into the trainable weights
    distill_steps: int = 60
    distill_lr: float = 1e-4
    distill_batch_size: int = 8
    distill_prompts: int = 0  # also distil on this many built-in broad prompts, answered by the unlearned model
    summary = "unlearn with a base method, noise the weights toward a fresh init, distil the result back"
    benchmark_settings = {
        "demo": {"train.lr": 1e-4, "method.base": "undial", "method.base_settings.retain_weight": 20.0},
    }

    def __post_init__(self) -> None:
        if self.base == "undo":
            raise ConfigError("undo: base must be another method (e.g. npo or undial)")
        self.base_method = make_method({"name": self.base, **self.base_settings})

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"undo: alpha must be in [0, 1], got {self.alpha}")
        if self.distill_steps < 0 or self.distill_lr <= 0 or self.distill_batch_size < 1 or self.distill_prompts < 0:
            raise ConfigError("undo: distill_steps >= 0, distill_lr > 0, distill_batch_size >= 1 and distill_prompts >= 0 "
                              "are required")

    # the first stage is the base method: its needs and its loss
    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.base_method.needs_reference

    @property
    def needs_retain(self) -> bool:  # type: ignore[override]
        return self.base_method.needs_retain

    @property
    def needs_alternate_answers(self) -> bool:  # type: ignore[override]
        return self.base_method.needs_alternate_answers

    @property
    def default_lr(self) -> float:  # type: ignore[override]
        return self.base_method.default_lr

    def setup(self, model, reference) -> None:
        self.base_method.setup(model, reference)

    def trainable_override(self, n_layers: int):
        return self.base_method.trainable_override(n_layers)

    def before_training(self, model, tokenizer, request, train_cfg, progress: bool = True) -> None:
        from ..unlearner import prepare_method

        prepare_method(self.base_method, model, tokenizer, request, train_cfg, progress)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        return self.base_method.loss(model, batch, reference)

    def release(self) -> None:
        from ..unlearner import release_method

        release_method(self.base_method)

    def after_training(self, model, tokenizer, request, train_cfg, progress: bool = True):
        """Noise the trainable parameters, then distil the unlearned model into them; returns the train result."""
        from ..data.request import QA, DataSpec
        from ..models.reference import Reference
        from ..train.loop import TrainingData, train
        from ..unlearner import default_retain_spec, encode_spec

        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not params:
            raise ConfigError("undo: no trainable parameter to noise")
        broad = own_answers(model, tokenizer, self.distill_prompts,  # before the noise: the teacher's own answers
                            "undo: the unlearned model's answers to broad prompts" if progress else None)
        teacher = Reference(model)  # the unlearned model, before the noise
        std = float(getattr(model.config, "initializer_range", 0.02))
        generator = torch.Generator().manual_seed(train_cfg.seed + 17)
        with torch.no_grad():
            for name, p in params:
                p.copy_(noised(p, fresh_init(name, p, std, generator), self.alpha))
        whole = DataSpec(texts=request.retain.texts + request.anchor.texts,
                         qa=[QA(q.question, q.answer) for q in request.retain.qa + request.anchor.qa] + broad)
        examples = encode_spec(tokenizer, whole, train_cfg.max_length)
        examples += encode_spec(tokenizer, default_retain_spec(), train_cfg.max_length)
        cfg = dataclasses.replace(train_cfg, lr=self.distill_lr, max_steps=self.distill_steps,
                                  batch_size=self.distill_batch_size, early_stop=False, repair_steps=0, warmup_steps=0,
                                  retain_similar=0, anchor_weight=0.0)
        result = train(model, Distill(), TrainingData(examples), cfg, tokenizer.pad_token_id, reference=teacher,
                       progress=progress, description=f"undo: distilling into the noised copy (alpha {self.alpha})")
        del teacher
        return result


__all__ = ["Undo", "distill_loss", "fresh_init", "noised"]
