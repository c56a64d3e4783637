"""Task-vector negation: fine-tune on the forget data, then move the weights the same way back and beyond.

    θ_ft = θ₀ fine-tuned on the forget data (NLL, the run's training budget)
    τ    = θ_ft − θ₀                       (the forget data's task vector)
    θ_u  = θ₀ − α · τ                      (applied to the trained parameters)

The fine-tuning amplifies what the model knows of the forget data; subtracting that direction from the starting
weights removes it, without a loss that runs away (no gradient ascent).

With `retain_vector`, a second fine-tuning from θ₀ on the request's retain data gives τ_r (same steps and lr), and
what the two vectors share is kept (project option, not in the source):
    orthogonal:  θ_u = θ₀ − α · (τ − (⟨τ, τ_r⟩ / ‖τ_r‖²) τ_r)      (per parameter tensor)
    subtract:    θ_u = θ₀ − α · (τ − τ_r)
Facts taught the same way share a direction (how they are said); negating τ alone removes it for everyone.
With `density` < 1, only that share of the vector's entries largest in magnitude (per tensor) is negated, TIES's
trim step (Yadav et al. 2023, Sec. 3): the small entries are the diffuse part of the change, which α scales into
damage to everything else the weights hold.
With `repair_steps` > 0, the negated model is then fine-tuned that many steps on the retain data (NLL, the run's
rate and batch size) to win back what the negation took from it (project option). With `repair_teacher` (a
checkpoint that never saw the forget data, e.g. the one the model was fine-tuned from), the repair also holds the
forget answers to it, base_distill's term KL(teacher ‖ model) on their tokens (project option): negation scales
every fact's change by α alike, so the facts fine-tuning raised most end up *below* where an untaught model
ranks them, and the teacher brings them back to that level. With `repair_general` > 0, the repair also replays
the model's own greedy answers, recorded before any step, to that many built-in broad prompts (NLL, mixed into the
retain batches; project option): negation moves everything the forget fine-tuning moved, how the model answers
everyday questions included, and the retain data holds only the other people's facts (on the demo it did not
keep general knowledge; `density` did: docs/benchmarks.md).
Source: Ilharco, Ribeiro, Wortsman, Gururangan, Schmidt, Hajishirzi and Farhadi 2023, "Editing Models with Task
Arithmetic" (ICLR 2023), Sec. 3 (forgetting by negation); an unlearning baseline of MUSE (Shi et al. 2024,
arXiv 2407.06460), α = 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .base import BASE_MODEL, METHODS, LossMethod, LossOutput, StepBatch
from .common import (
    answer_nll,
    check_same_vocabulary,
    forget_nll_output,
    own_answers,
    retrain_from_start,
    train_stage,
    trainable_snapshot,
    trim,
)

RETAIN_VECTORS = ("none", "orthogonal", "subtract")


def negated(start: torch.Tensor, tuned: torch.Tensor, alpha: float) -> torch.Tensor:
    """θ₀ − α (θ_ft − θ₀)."""
    return start - alpha * (tuned - start)


def without_shared(vector: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """vector − (⟨vector, shared⟩ / ‖shared‖²) shared: the part of `vector` orthogonal to `shared` (unchanged when
    `shared` is zero)."""
    norm = shared.float().pow(2).sum()
    if norm == 0:
        return vector
    return vector - ((vector.float() * shared.float()).sum() / norm).to(vector) * shared


def task_update(start: torch.Tensor, tuned: torch.Tensor, retained: torch.Tensor | None, alpha: float,
                retain_vector: str, density: float = 1.0) -> torch.Tensor:
    """θ_u for one tensor: θ₀ − α τ, with τ first cleared of the retain vector's share and then trimmed to its
    `density` share of largest-magnitude entries (see the module)."""
    vector = tuned - start
    if retained is not None and retain_vector == "orthogonal":
        vector = without_shared(vector, retained - start)
    elif retained is not None and retain_vector == "subtract":
        vector = vector - (retained - start)
    if density < 1.0:
        vector = trim(vector, density)
    return start - alpha * vector


@METHODS.register("task_vector")
@dataclass
class TaskVector(LossMethod):
    alpha: float = 1.0  # how far past the starting weights to move against the task vector
    retain_vector: str = "none"  # none | orthogonal | subtract: keep what a retain fine-tuning shares (module doc)
    repair_steps: int = 0  # retain NLL steps after the negation
    repair_teacher: str = ""  # with repair_steps: also hold the forget answers to this untaught checkpoint
    repair_general: int = 0  # with repair_steps: also replay the starting model's answers to this many broad prompts
    density: float = 1.0  # share of the task vector's entries (largest in magnitude, per tensor) that is negated
    family = "weights"
    summary = "fine-tune on the forget data, then subtract that change from the starting weights (x alpha)"
    benchmark_settings = {
        # the fine-tuning must run its budget: an early stop on forgotten probes would never fire. The retain
        # vector and the repair keep the other people; α 2.5 with the base model as the repair's teacher
        # survives relearning, 80 repair steps (not 40) keep the truth from being ranked last for a second
        # person too, and negating only the largest fifth of the vector keeps a fourth person's general
        # knowledge (docs/benchmarks.md, measured on the demo over four people)
        "demo": {"train.lr": 1e-4, "train.early_stop": False, "train.max_steps": 20,
                 "method.retain_vector": "subtract", "method.alpha": 2.5, "method.repair_steps": 80,
                 "method.repair_teacher": BASE_MODEL, "method.density": 0.2},
        "tofu": {"train.lr": 1e-5},
    }

    def __post_init__(self) -> None:
        self._general = []  # QA pairs: the starting model's broad answers (before_training), used by the repair

    def validate(self) -> None:
        if self.alpha <= 0:
            raise ConfigError("task_vector: alpha must be > 0")
        if self.repair_steps < 0:
            raise ConfigError("task_vector: repair_steps must be >= 0")
        if not 0.0 < self.density <= 1.0:
            raise ConfigError(f"task_vector: density must be in (0, 1], got {self.density}")
        if self.repair_general < 0:
            raise ConfigError("task_vector: repair_general must be >= 0")
        for option in ("repair_teacher", "repair_general"):
            if getattr(self, option) and not self.repair_steps:
                raise ConfigError(f"task_vector: {option} is used by the repair stage; set repair_steps > 0")
        if self.retain_vector not in RETAIN_VECTORS:
            raise ConfigError(f"task_vector: retain_vector '{self.retain_vector}' is unknown; use one of "
                              f"{', '.join(RETAIN_VECTORS)}")

    @property
    def needs_retain(self) -> bool:  # type: ignore[override]
        return self.retain_vector != "none" or self.repair_steps > 0

    def before_training(self, model, tokenizer, request, train_cfg, progress: bool = True) -> None:
        if self.needs_retain and not (request.retain.qa or request.retain.texts):
            raise ConfigError("task_vector: retain_vector and repair_steps need retain data in the request")
        if self.repair_teacher:  # the teacher is loaded for the repair; a wrong one is refused before any step
            from ..models.loading import load_tokenizer

            check_same_vocabulary(tokenizer, load_tokenizer(self.repair_teacher), self.repair_teacher)
        # the starting model's own answers, recorded now: the repair replays them after the negation
        self._general = own_answers(model, tokenizer, self.repair_general,
                                    "task_vector: the model's answers to broad prompts" if progress else None)

    def setup(self, model, reference) -> None:
        self._start = trainable_snapshot(model)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        return forget_nll_output(model, batch.forget)

    def after_training(self, model, tokenizer, request, train_cfg, progress: bool = True):
        """Replace each trained parameter by θ₀ − α τ (τ cleared of the retain vector's share when asked)."""
        from ..train.loop import TrainResult

        start_time = time.perf_counter()
        retained, steps = [None] * len(self._start), 0
        if self.retain_vector != "none":
            retained, result = retrain_from_start(model, self._start, RetainFineTune(), tokenizer, request, train_cfg,
                                                  progress, "task_vector: fine-tuning on the retain data")
            steps = result.steps
        with torch.no_grad():
            for (p, start), kept in zip(self._start, retained, strict=True):
                p.copy_(task_update(start.to(p), p, None if kept is None else kept.to(p), self.alpha,
                                    self.retain_vector, self.density))
        self._start = []
        if self.repair_steps:
            steps += self._repair(model, tokenizer, request, train_cfg, progress)
        return TrainResult(steps=steps, seconds=time.perf_counter() - start_time)

    def _repair(self, model, tokenizer, request, train_cfg, progress: bool) -> int:
        """The repair steps on the negated model: retain NLL (the starting model's broad answers mixed into the retain
        data with `repair_general`), with the teacher's KL on the forget answers when a `repair_teacher` is set
        (base_distill's loss)."""
        import dataclasses

        from ..data.request import DataSpec
        from .base import make_method

        general, self._general = self._general, []
        if general:
            request = dataclasses.replace(request, retain=DataSpec(texts=request.retain.texts,
                                                                   qa=request.retain.qa + general))

        repairer = (make_method({"name": "base_distill", "teacher": self.repair_teacher, "retain_loss": "nll"})
                    if self.repair_teacher else RetainFineTune())
        result = train_stage(model, repairer, tokenizer, request,
                             dataclasses.replace(train_cfg, max_steps=self.repair_steps), progress,
                             "task_vector: repairing on the retain data")
        return result.steps


@dataclass
class RetainFineTune(LossMethod):
    """τ_r's fine-tuning: NLL on the retain batches (not registered: a stage of task_vector)."""

    needs_retain = True

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        learn = answer_nll(model, batch.retain)
        return LossOutput(learn, {"retain_nll": learn.item()})
