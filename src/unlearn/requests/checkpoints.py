"""Checkpoints of a state directory: each applied request's weight update, stored as a delta.

A checkpoint holds, per parameter it changed, either a dense delta (`dense:<param>`: after - before) or
LoRA factors (`lora_A:<param>`, `lora_B:<param>`, the scale folded into B, so the delta is B @ A). The
current model is the base model plus every live checkpoint, added in ledger order: a state directory never
stores a full model per request. Files are written to a temporary name, fsynced and renamed, and their
SHA-256 is recorded in the ledger; a file whose checksum does not match is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import UnlearnError
from ..io import file_sha256
from .faults import kill_point

DENSE, LORA_A, LORA_B = "dense:", "lora_A:", "lora_B:"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Write `tensors` as safetensors at `path` atomically; returns the file's SHA-256.

    A failure (a full disk included) removes the temporary file and leaves `path` as it was."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        # one metadata key: safetensors writes several keys in an arbitrary order, and the bytes must not vary
        header = {"unlearn": json.dumps(metadata, sort_keys=True)}
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=header)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        kill_point("checkpoint-written")
        digest = file_sha256(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UnlearnError(f"could not write checkpoint {path} ({exc.strerror or exc}); nothing was changed: "
                           "free space in the state directory and rerun the same command") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest


def load_checkpoint(path: str | Path, sha256: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, after checking its checksum against the ledger's."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise UnlearnError(f"checkpoint {path} recorded in the ledger is missing; restore the state directory "
                           "from a backup")
    if file_sha256(path) != sha256:
        raise UnlearnError(f"checkpoint {path} is corrupt (its SHA-256 does not match the ledger); restore it from a "
                           "backup")
    return load_file(str(path))


def dense_deltas(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parameter name -> dense delta (LoRA factors multiplied out)."""
    deltas: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.startswith(DENSE):
            name = key[len(DENSE):]
            deltas[name] = deltas.get(name, 0) + value.float()
        elif key.startswith(LORA_A):
            name = key[len(LORA_A):]
            deltas[name] = deltas.get(name, 0) + tensors[LORA_B + name].float() @ value.float()
    return deltas


def add_deltas(model, deltas: dict[str, torch.Tensor], sign: float = 1.0) -> None:
    """param += sign * delta for every parameter named in `deltas` (in place)."""
    params = dict(model.named_parameters())
    missing = [name for name in deltas if name not in params]
    if missing:
        raise UnlearnError(f"a checkpoint changes parameters this model lacks ({missing[0]}, ...): the state "
                           "directory belongs to another architecture")
    with torch.no_grad():
        for name, delta in deltas.items():
            params[name].add_(delta.to(params[name].dtype).to(params[name].device), alpha=sign)


def dense_update(model, before: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{'dense:<param>': after - before} for the parameters that changed."""
    params = dict(model.named_parameters())
    out = {}
    for name, old in before.items():
        delta = params[name].detach() - old
        if torch.any(delta != 0):
            out[DENSE + name] = delta
    return out


def lora_update(peft_model) -> dict[str, torch.Tensor]:
    """{'lora_A:<param>': A, 'lora_B:<param>': scale * B} of a peft model's single adapter, keyed by the
    base model's parameter names."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for name, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer) or not module.lora_A:
            continue
        (adapter,) = list(module.lora_A)
        base_name = name.removeprefix("base_model.model.") + ".weight"
        a = module.lora_A[adapter].weight.detach()
        b = module.lora_B[adapter].weight.detach() * module.scaling[adapter]
        if getattr(module, "fan_in_fan_out", False):
            raise UnlearnError("LoRA checkpoints of fan_in_fan_out layers are not supported; use trainable.mode=layers")
        out[LORA_A + base_name] = a.clone()
        out[LORA_B + base_name] = b.clone()
    return out


def lora_a_factors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parameter name -> A factor, for a checkpoint made of LoRA factors."""
    return {k[len(LORA_A):]: v for k, v in tensors.items() if k.startswith(LORA_A)}
