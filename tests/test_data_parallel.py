"""Data-parallel unlearning through `accelerate launch`: each process trains on its part of every step's batch,
and the result matches one process (same losses, same weights within float tolerance)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearn.config import TrainConfig
from unlearn.errors import ConfigError
from unlearn.methods.base import StepBatch
from unlearn.train.loop import _check_data_parallel, mark_token_shares, split_draw

from .conftest import tiny_request_dict


def ragged_batch(lengths: list[int], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    labels = torch.full((len(lengths), width), -100)
    for row, n in enumerate(lengths):
        labels[row, 1:n] = torch.randint(5, 50, (n - 1,), generator=generator)
    return {"input_ids": labels.clamp(min=0), "attention_mask": (labels != -100).long(), "labels": labels}


def token_mean(batch: dict[str, torch.Tensor], values: torch.Tensor) -> torch.Tensor:
    mask = batch["labels"][:, 1:] != -100
    return (values[:, : mask.shape[1]] * mask).sum() / mask.sum()


def test_split_parts_with_token_shares_average_to_the_whole_steps_token_mean():
    """Per process and micro-batch: share x token mean; their average over processes and micro-batches is the
    token mean over the whole step, however ragged the answers."""
    micro = [ragged_batch([3, 9, 2, 7], 0), ragged_batch([12, 2, 5, 4], 1)]
    draws = [(StepBatch(forget=b), None) for b in micro]
    values = [torch.rand(4, 11, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    whole_mask = torch.cat([(b["labels"][:, 1:] != -100).flatten() for b in micro])
    whole = torch.cat([(v[:, :b["labels"].shape[1] - 1]).flatten() for v, b in zip(values, micro, strict=True)])
    expected = (whole * whole_mask).sum() / whole_mask.sum()

    parts = [split_draw(d, 2) for d in draws]
    mark_token_shares([p for m in parts for p in m])
    per_process = []
    for rank in range(2):
        mine = [(parts[a][rank][0].forget, values[a][rank * 2:(rank + 1) * 2]) for a in range(2)]
        per_process.append(sum(b["token_share"] * token_mean(b, v) for b, v in mine) / len(mine))
    assert torch.allclose(sum(per_process) / 2, expected, atol=1e-6)
    assert [p[0].forget["input_ids"].shape[0] for m in parts for p in m] == [2, 2, 2, 2]


def test_data_parallel_settings_are_checked():
    class Plain:
        registered_name = "npo"

    with pytest.raises(ConfigError, match="do not split over 2 processes"):
        _check_data_parallel(TrainConfig(batch_size=3), Plain(), 2)
    with pytest.raises(ConfigError, match="retain_batch_size=5"):
        _check_data_parallel(TrainConfig(batch_size=4, retain_batch_size=5), Plain(), 2)
    with pytest.raises(ConfigError, match="one process only"):
        _check_data_parallel(TrainConfig(batch_size=4, optimizer="zo"), Plain(), 2)

    class OwnUpdate(Plain):
        registered_name = "mudman"

        def update(self, *args):
            pass

    with pytest.raises(ConfigError, match="makes its own updates"):
        _check_data_parallel(TrainConfig(batch_size=4), OwnUpdate(), 2)
    _check_data_parallel(TrainConfig(batch_size=4), Plain(), 2)  # even batches on first-order updates: fine


def test_commands_that_are_not_rank_aware_refuse_several_processes(monkeypatch, capsys, tmp_path):
    from unlearn.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["teach", str(tmp_path / "data.jsonl"), "--state", str(tmp_path / "state")]) == 2
    assert "runs on one process" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


@pytest.mark.skipif(shutil.which("accelerate") is None and not (Path(sys.executable).parent / "accelerate").exists(),
                    reason="the accelerate launcher is not installed")
def test_two_cpu_processes_match_one(model_dir, tmp_path):
    (tmp_path / "request.json").write_text(json.dumps(tiny_request_dict()))
    env = {**os.environ, "UNLEARN_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    settings = ["--method", "grad_diff", "--model", str(model_dir), "--quiet", "--no-eval",
                "--set", "train.max_steps=6", "--set", "train.batch_size=4", "--set", "train.lr=3e-3",
                "--set", "trainable.mode=all"]
    launcher = str(Path(sys.executable).parent / "accelerate")
    runs = {
        "one": [sys.executable, "-m", "unlearn", "run"],
        # --multi_gpu on a machine without GPUs is accelerate's multi-CPU data parallelism (gloo)
        "two": [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                "-m", "unlearn", "run"],
    }
    for name, command in runs.items():
        done = subprocess.run(command + [str(tmp_path / "request.json"), *settings, "--out", str(tmp_path / name)],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / n / "report.json").read_text())["training"] for n in ("one", "two"))
    assert one["processes"] == 1 and two["processes"] == 2
    assert [h["step"] for h in two["history"]] == list(range(1, 7))
    for a, b in zip(one["history"], two["history"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-4 and abs(a["grad_norm"] - b["grad_norm"]) < 1e-3
    assert one["history"][-1]["loss"] < one["history"][0]["loss"] - 0.5  # it trained: the step losses moved

    from safetensors.torch import load_file

    weights = [load_file(tmp_path / n / "model" / "model.safetensors") for n in ("one", "two")]
    gap = max((weights[0][k] - weights[1][k]).abs().max().item() for k in weights[0])
    assert gap < 1e-4, f"one and two processes differ by {gap} in a weight"

    # a method that hooks a decoder layer finds it through the data-parallel wrapper
    rmu = [a if a != "grad_diff" else "rmu" for a in settings] + ["--set", "method.layer=2"]
    done = subprocess.run(runs["two"] + [str(tmp_path / "request.json"), *rmu, "--out", str(tmp_path / "rmu")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((tmp_path / "rmu" / "report.json").read_text())["training"]["history"]
    assert len(history) == 6 and all(h["loss"] == h["loss"] for h in history)
