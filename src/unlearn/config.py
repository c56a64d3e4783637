"""Typed configuration: dataclasses, YAML load/save, `a.b=c` overrides; unknown keys are errors."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .data.bounded import load_yaml_text, read_limited, shown
from .errors import ConfigError
from .registry import did_you_mean

T = TypeVar("T")


@dataclass
class ModelConfig:
    """Which model to load. `name` is 'default' (the embedded model), a hub id, a local directory or a .gguf file."""

    name: str = "default"
    dtype: str = "float32"


@dataclass
class TrainableConfig:
    """Which parameters are updated.

    mode: 'all' | 'layers' (Python slice over decoder layers, e.g. '-10:' or '10:20')
          | 'pattern' (regular expression over parameter names) | 'lora' (peft adapters).
    """

    mode: str = "layers"
    layers: str = "-10:"
    pattern: str = ""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_layers: str = ""  # slice of decoder layers that get adapters (e.g. '-10:'); empty: all layers
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class TrainConfig:
    """The training loop's settings (shared by every loss method)."""

    lr: float | None = None  # None: the method's default_lr
    max_steps: int = 0  # 0: run `epochs` passes over the forget set instead
    epochs: float = 5.0
    batch_size: int = 8
    retain_batch_size: int = 0  # retain examples per step; 0: same as batch_size
    retain_similar: int = 0  # of those, drawn from the retain items most like the step's forget items (train/similar.py)
    anchor_weight: float = 1.0  # weight of KL(model before || model) on the request's anchor data (if it has any)
    anchor_batch_size: int = 0  # anchor examples per step; 0: same as batch_size
    grad_accum: int = 1
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | linear | cosine
    optimizer: str = "adamw"  # adamw | sgd | sign (signum) | zo (SPSA zeroth-order) | hybrid (AdamW + every zo_every-th step zo)
    zo_mu: float = 1e-3  # zo/hybrid: perturbation scale μ of the two-point estimate
    zo_queries: int = 1  # zo/hybrid: random directions averaged per estimate
    zo_lr: float = 1e-6  # hybrid: step size of the zeroth-order steps (zo uses lr)
    zo_every: int = 2  # hybrid: every zo_every-th step is zeroth-order
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 128
    seed: int = 0
    early_stop: bool = False  # stop once the request's forget probes are forgotten
    early_stop_every: int = 5  # steps between probe checks
    early_stop_accuracy: float = 0.0  # forget-probe accuracy at or below which training stops
    repair_steps: int = 0  # then at most this many retain/anchor-only steps, while the forget probes stay forgotten
    cpu: bool = False  # force CPU even when an accelerator is present


ANCHOR_SETTINGS = ("anchor_weight", "anchor_batch_size")
ZEROTH_ORDER = ("zo", "hybrid")  # optimizers that take zeroth-order steps
ZO_SETTINGS = ("zo_mu", "zo_queries", "zo_lr", "zo_every")  # used only by the ZEROTH_ORDER optimizers
OFF_BY_DEFAULT = ("retain_similar", "repair_steps")  # unlearning settings that teaching could use, 0 = off


def teaching_identity(train: dict[str, Any]) -> dict[str, Any]:
    """A TrainConfig (as a dict) for the cache key of a model taught with it: the anchor settings are left
    out, since teaching has no anchor data and they change nothing, and so are the OFF_BY_DEFAULT settings while
    they are off (keys made before these settings existed stay)."""
    zeroth_order = train.get("optimizer") in ZEROTH_ORDER
    return {k: v for k, v in train.items() if k not in ANCHOR_SETTINGS and not (k in OFF_BY_DEFAULT and not v)
            and (zeroth_order or k not in ZO_SETTINGS)}


@dataclass
class EvalConfig:
    batch_size: int = 16  # texts per scored batch (likelihoods: every position's logits over the vocabulary)
    generation_batch_size: int = 64  # probes per greedy-generation batch (only the last position's logits
    # are kept per step, so larger batches fit; 184 demo probes: 22.6 s at 64, 34.5 s at 16 on 2 CPU cores)
    max_new_tokens: int = 32
    rouge_threshold: float | None = 0.8  # the judge (metrics/judge.py): answered when the reply holds the answer
    # or its ROUGE-L recall reaches this; null: containment alone


@dataclass
class SequenceConfig:
    """How `unlearn apply` processes requests over time in a state directory (docs/requests.md).

    technique: 'sequential' (each request fine-tunes the current model; old updates are folded together),
               'lora' (one LoRA adapter per request), 'task_vector' (each request's update is trained from the
               base model and kept apart, so it can be removed again).
    """

    technique: str = "sequential"
    lora_merge: bool = True  # lora: old adapters may be folded together (False: each stays separate, removable)
    lora_orthogonal: float = 0.0  # lora: weight of the orthogonality penalty between a new adapter and earlier ones
    keep_checkpoints: int = 2  # foldable techniques: newest per-request checkpoints kept apart; older ones folded
    keep_data: bool = False  # keep the raw request in the ledger (default: hashes, counts and sealed probes only)
    max_forget_accuracy: float = 0.1  # a request's forget probes count as forgotten at or below this accuracy
    relapse_tolerance: float = 0.0  # an earlier request may rise this much above max(its value then, the above)
    utility_tolerance: float = 0.1  # neighbour/general accuracy must stay >= (1 - this) x before the first request


@dataclass
class RunConfig:
    """Everything one unlearning run needs besides the request itself."""

    model: ModelConfig = field(default_factory=ModelConfig)
    method: dict[str, Any] = field(default_factory=lambda: {"name": "npo"})
    trainable: TrainableConfig = field(default_factory=TrainableConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check/convert one value against a type hint (int -> float allowed, nested dataclasses built)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {shown(value)}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {shown(value)}")
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {shown(value)}")
    if hint in (int, float, str) and not isinstance(value, hint):
        if hint is float and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected {hint.__name__}, got {shown(value)}")
    return value


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise ConfigError with a suggestion."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    types_ = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in types_:
            raise ConfigError(
                f"{where}: unknown key {shown(key)}.{did_you_mean(shown(key).strip(chr(39)), list(types_))} Valid keys: {', '.join(types_)}"
            )
        kwargs[key] = _coerce(value, types_[key], f"{where}.{key}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass (possibly nested) -> plain dict suitable for YAML/JSON."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.lr=1e-4' -> (['train', 'lr'], 0.0001). Values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value (e.g. train.lr=1e-4)")
    key, raw = text.split("=", 1)
    try:
        value = load_yaml_text(raw, f"override '{key}'") if raw.strip() else ""
    except ConfigError:
        value = raw
    if isinstance(value, (dict, list)) and not raw.strip().startswith(("[", "{")):
        value = raw  # e.g. a layer slice '-1:' is text, not a YAML mapping
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in "eE.") else value
        except ValueError:
            pass
    return [k for k in key.strip().split(".") if k], value


_MULTIPLIER = re.compile(r"^x(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def multiplier(raw: str) -> float | None:
    """'x3' -> 3.0, 'x0.5' -> 0.5: an override value relative to the setting's current value; None otherwise."""
    raw = raw.strip()
    return float(raw[1:]) if _MULTIPLIER.match(raw) else None


def apply_overrides(data: Any, overrides: list[str]) -> dict[str, Any]:
    """Return a copy of nested dict (or dataclass) `data` with each 'a.b=c' override applied. A value 'xN' multiplies the
    number the key holds at that point (e.g. `train.lr=x3` after a method's benchmark settings: three times
    that method's rate), so one grid can scale every method's own setting."""
    result = to_dict(data)
    for text in overrides:
        path, value = parse_override(text)
        if not path:
            raise ConfigError(f"override '{text}' has an empty key")
        node = result
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{key}' is not a section")
        factor = multiplier(text.split("=", 1)[1])
        if factor is not None:
            current = node.get(path[-1])
            if isinstance(current, bool) or not isinstance(current, (int, float)):
                raise ConfigError(f"override '{text}' multiplies the value of '{'.'.join(path)}', which has no "
                                  f"number here ({current!r}); give the value itself")
            value = float(f"{current * factor:.12g}")  # 1e-4 x3 is 3e-4, not 0.00030000000000000003
            if isinstance(current, int) and value == int(value):
                value = int(value)  # a count stays a count (an uneven product is refused as a non-integer later)
        node[path[-1]] = value
    return result


def with_overrides(cls: type[T], base: Any, overrides: list[str] | None, where: str = "config") -> T:
    """`base` (a `cls` instance or its dict form) with each `a.b=c` override applied, checked as a `cls`:
    a misspelt key is a ConfigError that suggests the right name."""
    return from_dict(cls, apply_overrides(base, list(overrides or [])), where)


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"file not found: {path}")
    return load_yaml_text(read_limited(path, "file"), str(path))


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a RunConfig from YAML (or defaults) and apply overrides."""
    data = to_dict(from_dict(RunConfig, (load_yaml(path) if path else None) or {}, str(path or "config")))
    return with_overrides(RunConfig, data, overrides)


def save_yaml(obj: Any, path: str | Path) -> None:
    from .io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))
