"""What every method shares: the registry, the step inputs and outputs, and the dataclass protocol."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..config import TrainableConfig
from ..registry import Registry, build_registered, dataclass_defaults
from .common import check_retain_loss

METHODS: Registry[type] = Registry("method")
FAMILIES = ("loss", "weights", "guard")


@dataclass
class StepBatch:
    """One training step's inputs. `forget_alt` holds the same prompts with alternative (e.g. refusal) answers."""

    forget: dict[str, torch.Tensor]
    retain: dict[str, torch.Tensor] | None = None
    forget_alt: dict[str, torch.Tensor] | None = None


@dataclass
class LossOutput:
    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


class LossMethod:
    """Protocol of a loss-family method: a dataclass whose fields are its hyperparameters.

    Subclasses set the class variables below and implement `loss`. A method never inherits
    from another method; shared pieces are functions in `methods/common.py`.

    Optional hooks, looked up by name:
    - `before_training(model, tokenizer, request, train_cfg, progress)`: before the training data is built and the model
      changes (measure something on the starting model, write data, refuse a request early);
    - `alternate_answer(index, qa) -> str`: the preferred answer of forget item `index` (`forget_alt`; a refusal
      when absent);
    - `alternate_answers(index, qa) -> list[str]`: several answers for item `index`; each pairs with a copy of its
      forget example in `forget_alt` (e.g. meow's inverted facts);
    - `after_training(model, tokenizer, request, train_cfg, progress) -> TrainResult`: a second stage;
    - `release()`: after training (and the second stage), drop what only training needed (e.g. a teacher model).
    """

    family: ClassVar[str] = "loss"
    needs_reference: ClassVar[bool] = False  # uses a frozen copy of the starting model
    needs_retain: ClassVar[bool] = False  # uses retain batches
    needs_alternate_answers: ClassVar[bool] = False  # uses `forget_alt` (refusal answers)
    default_lr: ClassVar[float] = 1e-5  # used when train.lr is not set (source in docs/paper_index.md)
    summary: ClassVar[str] = ""
    # Run overrides this method uses on each benchmark ('demo', 'tofu'), e.g. {"demo": {"train.lr": 2e-5}}:
    # the measured settings of docs/benchmarks.md, read by the benchmarks and sweeps through `benchmark_settings`.
    benchmark_settings: ClassVar[dict[str, dict[str, Any]]] = {}

    def setup(self, model, reference) -> None:  # noqa: B027 - optional hook
        """Called once before training (e.g. to draw a random direction)."""

    def trainable_override(self, n_layers: int) -> TrainableConfig | None:
        """Parameters this method must train, overriding the run's selection (None: keep it)."""
        return None

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        raise NotImplementedError


class RetainTerm:
    """For a method with a retain term (`retain_weight` x the NLL or KL of retain batches, `retain_loss`): it needs
    retain data, and the starting model only for a KL term. A method that needs the starting model anyway sets
    `needs_reference = True`; one with more to check calls `super().validate()` first."""

    needs_retain: ClassVar[bool] = True

    def validate(self) -> None:
        check_retain_loss(self.retain_loss)

    @property
    def needs_reference(self) -> bool:
        return self.retain_loss == "kl"


class OptionalRetain:
    """For a method whose retain term is off at `retain_weight` 0: it needs retain data only when the term is on,
    and the starting model only for a KL retain term (`retain_loss` 'kl')."""

    def validate(self) -> None:
        check_retain_loss(self.retain_loss)

    @property
    def needs_retain(self) -> bool:  # type: ignore[override]
        return self.retain_weight > 0

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.retain_weight > 0 and self.retain_loss == "kl"


def method_fields(cls: type) -> dict[str, Any]:
    """Hyperparameter names and defaults of a method class."""
    return dataclass_defaults(cls)


BENCHMARKS = ("demo", "tofu", "muse", "wmdp", "rwku")  # "muse" and "rwku" fall back to "tofu" where a method declares none


BASE_MODEL = "{base_model}"  # a benchmark setting's value that stands for the benchmark's base model


def with_base_model(settings: dict[str, Any], base_model: str) -> dict[str, Any]:
    """`settings` with every value `BASE_MODEL` replaced by `base_model`: the checkpoint a benchmark's taught
    models start from (e.g. base_distill's teacher), which a method's declared settings cannot name."""
    return {key: base_model if value == BASE_MODEL else value for key, value in settings.items()}


def benchmark_settings(benchmark: str, method: str) -> dict[str, Any]:
    """The run overrides `method` declares for `benchmark` ({} when it declares none); an unknown method is
    an error that suggests the name."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; one of {BENCHMARKS}")
    return dict(getattr(METHODS.get(method), "benchmark_settings", {}).get(benchmark, {}))


def make_method(spec: str | dict[str, Any]):
    """Build a method from a name or a mapping {'name': ..., hyperparameter: value}; misspelt keys are errors."""
    return build_registered(METHODS, spec)


def method_settings(method) -> dict[str, Any]:
    """{'name': ..., **hyperparameters} for reports and model cards (a wrapper adds its own settings)."""
    inner = getattr(method, "wrapped_method", None)
    if inner is not None:
        return {**method_settings(inner), **method.wrapper_settings()}
    return {"name": method.registered_name, **dataclasses.asdict(method)}
