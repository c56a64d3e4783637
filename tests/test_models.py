"""Model loading errors, trainable selection and the output-directory guard."""

from __future__ import annotations

import pytest
import torch

from unlearn.config import TrainableConfig
from unlearn.errors import ConfigError, UnlearnError
from unlearn.models.loading import load_model, resolve_model_path
from unlearn.models.params import parse_layer_slice, select_trainable, trainable_parameters

from .conftest import make_model, make_tokenizer


def test_local_directory_round_trip(tmp_path, tiny_model, tokenizer):
    tiny_model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    model, tok = load_model(str(tmp_path / "m"))
    ids = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(model(input_ids=ids).logits, tiny_model(input_ids=ids).logits)
    assert tok.pad_token is not None and not model.training


def test_unknown_model_paths_are_clear(tmp_path):
    with pytest.raises(UnlearnError, match="not found"):
        resolve_model_path(str(tmp_path / "missing"))
    with pytest.raises(UnlearnError, match="GGUF file not found"):
        resolve_model_path(str(tmp_path / "x.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnlearnError, match="no config.json"):
        resolve_model_path(str(tmp_path / "empty"))
    with pytest.raises(UnlearnError, match="could not load model"):
        load_model("no-such-org/no-such-model")


def test_layer_slices():
    assert parse_layer_slice("-2:", 4) == [2, 3]
    assert parse_layer_slice("1:3", 4) == [1, 2]
    assert parse_layer_slice("0", 4) == [0]
    for bad in ("x", "9", "3:1"):
        with pytest.raises(ConfigError):
            parse_layer_slice(bad, 4)


@pytest.mark.parametrize(
    ("cfg", "expect_in", "expect_out"),
    [
        (TrainableConfig(mode="layers", layers="-1:"), "layers.3.", "layers.0."),
        (TrainableConfig(mode="pattern", pattern=r"mlp\.down_proj"), "down_proj", "q_proj"),
    ],
)
def test_trainable_selection(tiny_model, cfg, expect_in, expect_out):
    model = select_trainable(tiny_model, cfg)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(expect_in in n for n in names) and not any(expect_out in n for n in names)


def test_lora_selection(tiny_model):
    pytest.importorskip("peft")
    model = select_trainable(tiny_model, TrainableConfig(mode="lora", lora_r=2))
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    last = select_trainable(make_model(len(make_tokenizer())), TrainableConfig(mode="lora", lora_r=2, lora_layers="-1:"))
    names = [n for n, p in last.named_parameters() if p.requires_grad]
    assert names and all(".layers.3." in n for n in names)
    with pytest.raises(ConfigError, match="lora_targets"):
        select_trainable(tiny_model, TrainableConfig(mode="lora", lora_targets=["nope"]))


def test_selection_errors(tiny_model):
    with pytest.raises(ConfigError, match="mode"):
        select_trainable(tiny_model, TrainableConfig(mode="some"))
    with pytest.raises(ConfigError, match="no parameter"):
        select_trainable(tiny_model, TrainableConfig(mode="pattern", pattern="nothing-matches"))
    assert not trainable_parameters(tiny_model)


def test_model_device_auto_is_the_cpu_without_cuda(monkeypatch):
    from unlearn.models.loading import model_device

    monkeypatch.delenv("UNLEARN_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert model_device() == torch.device("cpu")
    monkeypatch.setenv("UNLEARN_DEVICE", "CPU")
    assert model_device() == torch.device("cpu")


def test_model_device_auto_takes_the_process_gpu(monkeypatch):
    from unlearn.models.loading import model_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert model_device("auto") == torch.device("cuda", 1)


@pytest.mark.parametrize("value, message", [("cuda", "sees no CUDA device"), ("tpu", "unknown device"),
                                            ("mps", "runs on cpu or cuda")])
def test_model_device_refuses_what_it_cannot_use(monkeypatch, value, message):
    from unlearn.models.loading import model_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UnlearnError, match=message):
        model_device(value)


def test_cli_device_flag_is_checked_before_the_command(capsys, monkeypatch):
    from unlearn.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--device", "cuda:1", "ls", "methods"]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err
