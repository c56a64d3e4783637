"""Weight quantization as an attack: round-to-nearest (RTN) to 8 or 4 bits, in torch, on any device.

Zhang et al., ICLR 2025, "Catastrophic Failure of LLM Unlearning via Quantization" (arXiv 2410.16454): the
small weight updates of utility-constrained unlearning fall inside one quantization step, so quantizing
brings the forgotten knowledge back (their abstract: 21% retained in full precision, 83% after 4-bit). RTN
is the simplest of the schemes they test and needs no calibration data. Per output channel or per group of
`group_size` input weights:

    asymmetric:  s = (max - min) / (2^b - 1),  z = round(-min / s),  q = clamp(round(w / s) + z, 0, 2^b - 1),
                 w' = (q - z) * s
    symmetric:   s = max|w| / (2^(b-1) - 1),    q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1),  w' = q * s

A group whose weights are all equal keeps them exactly (s would be 0). When `group_size` does not divide a
row, the last group is shorter. The output layer and the embeddings are left in full precision, as
GPTQ, AWQ and bitsandbytes leave them.

The attack (`quantize`) asks the forget probes of RTN copies of the model, by default 8-bit per output
channel and 4-bit in groups of 128 (asymmetric), the two settings closest to the paper's 8-bit and 4-bit
results; a probe leaks when any copy gives its answer.

On a CUDA machine with `bitsandbytes` installed, the attack also asks bitsandbytes copies (`bnb_int8`:
LLM.int8() with its default outlier threshold 6.0; `bnb_nf4`: 4-bit NormalFloat, blocks of 64, bf16 compute),
the quantizers the paper's deployment scenario uses. The copy is made by saving the model's weights to a
temporary directory and reloading them through transformers' `BitsAndBytesConfig`; the embeddings and the
output layer stay in full precision there too. Without CUDA these schemes are skipped with a note, or are an
error when named explicitly in `schemes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from .base import (
    ATTACKS,
    Attack,
    AttackError,
    AttackOutcome,
    AuditContext,
    Query,
    Subject,
    ask,
    user,
)


def quantize_rtn(weight: torch.Tensor, bits: int, group_size: int = 0, symmetric: bool = False) -> torch.Tensor:
    """The dequantized RTN copy of a 2-D weight (out x in); `group_size` 0: one group per output channel."""
    if weight.dim() != 2:
        raise ConfigError(f"RTN quantizes 2-D weights, got shape {tuple(weight.shape)}")
    if not 2 <= bits <= 16:
        raise ConfigError(f"bits must be between 2 and 16, got {bits}")
    if group_size < 0:
        raise ConfigError(f"group_size must be 0 (per output channel) or positive, got {group_size}")
    rows, cols = weight.shape
    size = min(group_size or cols, cols)
    w = weight.detach().float()
    ragged = -cols % size
    if ragged:  # a shorter last group: pad it with copies of its own last weight, which leave its range alone
        w = torch.cat([w, w[:, -1:].expand(rows, ragged)], dim=1)
    w = w.reshape(rows, -1, size)
    if symmetric:
        levels = 2 ** (bits - 1) - 1
        scale = w.abs().amax(dim=-1, keepdim=True) / levels
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.clamp(torch.round(w / scale), -levels - 1, levels)
        out = q * scale
    else:
        low, high = w.amin(dim=-1, keepdim=True), w.amax(dim=-1, keepdim=True)
        scale = (high - low) / (2**bits - 1)
        flat = scale == 0
        scale = torch.where(flat, torch.ones_like(scale), scale)
        zero = torch.round(-low / scale)
        q = torch.clamp(torch.round(w / scale) + zero, 0, 2**bits - 1)
        out = torch.where(flat, w, (q - zero) * scale)
    return out.reshape(rows, -1)[:, :cols].to(weight.dtype)


def quantization_error(weight: torch.Tensor, bits: int, group_size: int = 0, symmetric: bool = False) -> float:
    """Largest absolute change RTN makes to `weight` (at most half a step of its group)."""
    return float((quantize_rtn(weight, bits, group_size, symmetric) - weight).abs().max())


def is_embedding_or_output(model, module) -> bool:
    inputs = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    outputs = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return module is inputs or module is outputs


def quantized_copy(model, bits: int, group_size: int = 0, symmetric: bool = False):
    """A copy of `model` whose linear layers (not the embeddings or the output layer) hold their RTN
    dequantized weights; `model` itself is not touched. GPT-2-style `Conv1D` layers (weight stored as
    in x out) are quantized per output channel like a linear layer. A model with no such layer is an error:
    the attack would otherwise compare the model with itself."""
    import copy

    from transformers.pytorch_utils import Conv1D

    attacked = copy.deepcopy(model)
    quantized = 0
    with torch.no_grad():
        for module in attacked.modules():
            if is_embedding_or_output(attacked, module):
                continue
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(quantize_rtn(module.weight, bits, group_size, symmetric))
            elif isinstance(module, Conv1D):
                module.weight.copy_(quantize_rtn(module.weight.T, bits, group_size, symmetric).T)
            else:
                continue
            quantized += 1
    if not quantized:
        raise AttackError(f"quantize: {type(model).__name__} has no linear layer to quantize besides its embeddings")
    return attacked


BNB_SCHEMES = ("bnb_int8", "bnb_nf4", "bnb_fp4")


def bitsandbytes_available() -> str | None:
    """None when bitsandbytes copies can be made here, else why not (with the fix)."""
    if not torch.cuda.is_available():
        return "bitsandbytes quantization needs a CUDA GPU; this machine has none (the RTN schemes run anywhere)"
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return "bitsandbytes is not installed: pip install bitsandbytes"
    return None


def bitsandbytes_config(scheme: str):
    """transformers' BitsAndBytesConfig for a `bnb_*` scheme."""
    from transformers import BitsAndBytesConfig

    if scheme == "bnb_int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=scheme.removeprefix("bnb_"),
                              bnb_4bit_compute_dtype=torch.bfloat16)


def bitsandbytes_copy(model, scheme: str):
    """A bitsandbytes-quantized copy of `model` on its CUDA device, through a temporary safetensors save."""
    import tempfile

    from transformers import AutoModelForCausalLM

    device = next(model.parameters()).device
    if device.type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    with tempfile.TemporaryDirectory(prefix="unlearn-bnb-") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        return AutoModelForCausalLM.from_pretrained(tmp, quantization_config=bitsandbytes_config(scheme),
                                                    device_map={"": device.index or 0}).eval()


def parse_scheme(text: str) -> tuple[int, int]:
    """'int8' -> (8, 0) per channel; 'int4_g128' -> (4, 128) in groups of 128."""
    import re

    match = re.fullmatch(r"int(\d+)(?:_g(\d+))?", text)
    if not match or not 2 <= int(match.group(1)) <= 16:
        raise ConfigError(f"quantize: scheme {text!r} is not of the form int<bits> or int<bits>_g<group>, "
                          f"e.g. int8 or int4_g128 (bits 2 to 16), nor one of {', '.join(BNB_SCHEMES)}")
    return int(match.group(1)), int(match.group(2) or 0)


@ATTACKS.register("quantize")
@dataclass
class Quantize(Attack):
    """The forget probes asked of quantized copies of the model: RTN 8-bit and 4-bit everywhere, and
    bitsandbytes int8 / nf4 on CUDA."""

    kind = "model"
    summary = "weight quantization on a copy: RTN int8 / int4 (groups of 128), bitsandbytes int8 / nf4 on CUDA"

    schemes: list[str] = field(default_factory=lambda: ["int8", "int4_g128"])
    symmetric: bool = False
    # Add the bitsandbytes schemes below to `schemes` when CUDA and bitsandbytes are present.
    bitsandbytes_when_cuda: list[str] = field(default_factory=lambda: ["bnb_int8", "bnb_nf4"])

    def validate(self) -> None:
        if not self.schemes:
            raise ConfigError("quantize: schemes is empty; e.g. schemes=[int8,int4_g128]")
        if any(s not in BNB_SCHEMES for s in self.bitsandbytes_when_cuda):
            raise ConfigError(f"quantize: bitsandbytes_when_cuda takes {', '.join(BNB_SCHEMES)}, "
                              f"got {self.bitsandbytes_when_cuda}")
        for scheme in self.schemes:
            if scheme not in BNB_SCHEMES:
                parse_scheme(scheme)

    def schemes_here(self) -> tuple[list[str], list[str]]:
        """The schemes to run on this machine, and notes on those left out."""
        missing = bitsandbytes_available()
        named = [s for s in self.schemes if s in BNB_SCHEMES]
        if named and missing:
            raise AttackError(f"quantize: {', '.join(named)} cannot run: {missing}")
        if missing:
            extra, notes = [], [f"bitsandbytes schemes skipped: {missing}"] if self.bitsandbytes_when_cuda else []
        else:
            extra, notes = [s for s in self.bitsandbytes_when_cuda if s not in self.schemes], []
        return [*self.schemes, *extra], notes

    def machine_dependent(self) -> dict[str, Any]:
        """The schemes that run here: the bitsandbytes ones only where CUDA and bitsandbytes are."""
        try:
            return {"schemes_here": self.schemes_here()[0]}
        except AttackError as exc:
            return {"error": str(exc)}

    def run(self, subject: Subject, ctx: AuditContext) -> AttackOutcome:
        schemes, notes = self.schemes_here()
        outcome = AttackOutcome({}, notes=notes)
        for scheme in schemes:
            if scheme in BNB_SCHEMES:
                copy = bitsandbytes_copy(subject.weights, scheme)
            else:
                bits, group = parse_scheme(scheme)
                copy = quantized_copy(subject.weights, bits, group, self.symmetric)
            attacked = subject.with_model(copy)
            queries = [Query.of(i, scheme, user(p.question), p.answers) for i, p in enumerate(ctx.probes)]
            part = ask(attacked, queries, ctx, f"quantized {scheme}")
            outcome.per_variant.update(part.per_variant)
            outcome.examples += part.examples
            del attacked, copy
        return outcome
