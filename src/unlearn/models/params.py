"""Choose which parameters train: all, a range of decoder layers, a name pattern, or LoRA adapters."""

from __future__ import annotations

import re

from torch import nn

from ..config import TrainableConfig
from ..errors import ConfigError

MODES = ("all", "layers", "pattern", "lora")


def decoder_layers(model) -> nn.ModuleList:
    """The model's list of transformer blocks (found structurally, so any causal LM works; a data-parallel
    wrapper is looked through)."""
    model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    n_layers = getattr(model.config, "num_hidden_layers", None)
    best = None
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if n_layers is None or len(module) == n_layers:
                return module
            best = best or module
    if best is None:
        raise ConfigError("could not find the model's decoder layers; use trainable.mode=pattern or all")
    return best


def parse_layer_slice(text: str, n_layers: int) -> list[int]:
    """'-10:' -> last ten layer indices; '3:7' -> [3, 4, 5, 6]; '5' -> [5]."""
    try:
        if ":" in text:
            start, stop = (int(p) if p.strip() else None for p in text.split(":", 1))
            indices = list(range(n_layers))[slice(start, stop)]
        else:
            index = int(text)
            indices = [list(range(n_layers))[index]]
    except (ValueError, IndexError):
        raise ConfigError(
            f"trainable.layers '{text}' is not a layer slice for a {n_layers}-layer model (e.g. '-10:' or '4:8')"
        ) from None
    if not indices:
        raise ConfigError(f"trainable.layers '{text}' selects no layer of a {n_layers}-layer model")
    return indices


def _freeze_all(model) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def select_trainable(model, cfg: TrainableConfig):
    """Mark the chosen parameters trainable and return the model (a peft model for mode 'lora')."""
    if cfg.mode not in MODES:
        raise ConfigError(f"trainable.mode '{cfg.mode}' is unknown; use one of {', '.join(MODES)}")
    if cfg.mode == "lora":
        return _add_lora(model, cfg)
    _freeze_all(model)
    if cfg.mode == "all":
        for p in model.parameters():
            p.requires_grad_(True)
    elif cfg.mode == "layers":
        layers = decoder_layers(model)
        for i in parse_layer_slice(cfg.layers, len(layers)):
            for p in layers[i].parameters():
                p.requires_grad_(True)
    else:
        try:
            regex = re.compile(cfg.pattern)
        except re.error as exc:
            raise ConfigError(f"trainable.pattern '{cfg.pattern}' is not a regular expression: {exc}") from None
        for name, p in model.named_parameters():
            if regex.search(name):
                p.requires_grad_(True)
    if not trainable_parameters(model):
        raise ConfigError(f"no parameter is trainable with trainable.mode={cfg.mode}; widen the selection")
    return model


def _add_lora(model, cfg: TrainableConfig):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("trainable.mode=lora needs peft: pip install 'unlearn[lora]'") from None
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in cfg.lora_targets if t in names]
    if not targets:
        raise ConfigError(f"none of lora_targets {cfg.lora_targets} is a module of this model")
    layers = parse_layer_slice(cfg.lora_layers, len(decoder_layers(model))) if cfg.lora_layers else None
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
                      layers_to_transform=layers)
    return get_peft_model(model, lora)


def trainable_parameters(model) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def is_peft_model(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def merge_if_lora(model):
    """Fold LoRA adapters into the base weights so the result saves as a plain model."""
    return model.merge_and_unload() if is_peft_model(model) else model
