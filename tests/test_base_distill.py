"""base_distill: the forget answers held to a teacher that never saw them (known answer, direction of the KL,
bad input, and the unlearned model moving to the teacher)."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch

from unlearn.config import RunConfig, TrainableConfig, TrainConfig
from unlearn.data.collate import collate
from unlearn.errors import ConfigError
from unlearn.methods import make_method
from unlearn.methods.base import StepBatch
from unlearn.methods.common import kl_on_answers
from unlearn.models.logprobs import IGNORE
from unlearn.unlearner import Unlearner, encode_spec

from .conftest import make_model, make_tokenizer

X = IGNORE


class FixedLogits(torch.nn.Module):
    """A stand-in model whose logits are given (the same for every row)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.logits = logits

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.logits.expand(input_ids.shape[0], -1, -1) + 0 * self.weight)


def test_the_forget_term_is_kl_from_the_teacher_to_the_model():
    # answer positions 0 and 1 (labels 1 and 2 follow them); position 2 predicts nothing counted.
    # teacher q = [1/2, 1/2], model p = [1/4, 3/4] at both: KL(q || p) = 1/2 ln 2 + 1/2 ln(2/3) = 1/2 ln(4/3).
    # The other direction, KL(p || q) = 3/4 ln(3/2) - 1/4 ln 2 = 0.131, is not what is asked.
    teacher = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [5.0, 0.0]]])
    student = torch.tensor([[[0.0, math.log(3)], [0.0, math.log(3)], [0.0, 9.0]]])
    method = make_method({"name": "base_distill", "teacher": "unused", "retain_weight": 0.0})
    method._teacher_model = FixedLogits(teacher)
    batch = {"input_ids": torch.tensor([[1, 0, 1]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
             "labels": torch.tensor([[X, 0, 1]])}
    out = method.loss(FixedLogits(student), StepBatch(forget=batch), reference=None)
    assert out.loss.item() == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)
    assert out.logs["teacher_kl"] == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)


def test_a_teacher_is_required_and_must_share_the_tokenizer(tmp_path, taught, tokenizer, tiny_request):
    with pytest.raises(ConfigError, match="needs method.teacher"):
        make_method({"name": "base_distill"})
    other = make_tokenizer()
    other.add_tokens(["<extra>"])
    make_model(len(other)).save_pretrained(tmp_path)
    other.save_pretrained(tmp_path)
    before = {n: p.detach().clone() for n, p in taught.named_parameters()}
    config = RunConfig(method={"name": "base_distill", "teacher": str(tmp_path)},
                       trainable=TrainableConfig(mode="all"), train=TrainConfig(max_steps=2, max_length=96))
    with pytest.raises(ConfigError, match="another tokenizer"):
        Unlearner(taught, tokenizer, config).apply(tiny_request, progress=False)
    assert all(torch.equal(before[n], p) for n, p in taught.named_parameters())
    config = RunConfig(method={"name": "task_vector", "repair_steps": 2, "repair_teacher": str(tmp_path)},
                       trainable=TrainableConfig(mode="all"), train=TrainConfig(max_steps=2, max_length=96))
    with pytest.raises(ConfigError, match="another tokenizer"):  # task_vector's repair teacher: before any step
        Unlearner(taught, tokenizer, config).apply(tiny_request, progress=False)
    assert all(torch.equal(before[n], p) for n, p in taught.named_parameters())


def kl_to(teacher, model, tokenizer, spec) -> float:
    """Mean KL(teacher || model) over the answer tokens of `spec`'s data."""
    batch = collate(encode_spec(tokenizer, spec, 96), tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ref = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return kl_on_answers(logits, ref, batch["labels"]).item()


def test_unlearning_moves_the_forget_answers_to_the_teacher(base_dir, taught, tokenizer, tiny_request):
    """The taught tiny model started from `base_dir`'s weights: distilling that model on the forget answers brings
    the taught model's distributions there most of the way, and the retain answers stay where they were."""
    from unlearn.models.loading import load_model

    teacher, _ = load_model(str(base_dir))
    start = kl_to(teacher, taught, tokenizer, tiny_request.forget)
    taught_copy = copy.deepcopy(taught)
    config = RunConfig(method={"name": "base_distill", "teacher": str(base_dir)},
                       trainable=TrainableConfig(mode="all"),
                       train=TrainConfig(lr=3e-3, max_steps=20, batch_size=4, max_length=96))
    unlearner = Unlearner(taught, tokenizer, config)
    result = unlearner.apply(tiny_request, progress=False)
    assert unlearner.method._teacher_model is None  # the teacher's memory is given back after training
    end = kl_to(teacher, result.model, tokenizer, tiny_request.forget)
    retain_drift = kl_to(taught_copy, result.model, tokenizer, tiny_request.retain)
    assert start > 0.5
    assert end < 0.3 * start, (start, end)
    assert retain_drift < 0.2 * start, (retain_drift, start)
    assert [h["teacher_kl"] for h in result.train.history][-1] < result.train.history[0]["teacher_kl"]


def test_the_benchmarks_give_the_teacher_their_own_base_model():
    """The demo and TOFU teach from their base model (the embedded one unless another is asked for): that model,
    not a fixed name, is base_distill's teacher there."""
    from unlearn.benchmarks import tofu_bench
    from unlearn.benchmarks.demo import demo_unlearn_config
    from unlearn.methods import with_base_model

    assert demo_unlearn_config("base_distill")["method"]["teacher"] == "default"
    assert demo_unlearn_config("task_vector", "qwen2.5-coder-0.5b")["method"]["repair_teacher"] == "qwen2.5-coder-0.5b"
    assert demo_unlearn_config("base_distill", "qwen2.5-coder-0.5b")["method"]["teacher"] == "qwen2.5-coder-0.5b"
    assert tofu_bench.bench_unlearn_config("base_distill", base_model="/models/base").method["teacher"] == "/models/base"
    assert with_base_model({"method.teacher": "{base_model}", "train.lr": 1e-4}, "m") == {"method.teacher": "m",
                                                                                         "train.lr": 1e-4}


def test_undo_gives_back_its_base_methods_teacher_too():
    """undo runs base_distill first: releasing undo releases the teacher it holds."""
    from unlearn.methods import make_method
    from unlearn.unlearner import release_method

    undo = make_method({"name": "undo", "base": "base_distill", "base_settings": {"teacher": "any"}})
    undo.base_method._teacher_model = object()
    release_method(undo)
    assert undo.base_method._teacher_model is None


def test_task_vector_repair_holds_the_forget_answers_to_its_teacher(base_dir, taught, tokenizer, tiny_request):
    """task_vector's repair with `repair_teacher` is base_distill's loss: after the same negation and repair steps
    the forget answers sit closer to the untaught model than after the plain retain repair."""
    from unlearn.models.loading import load_model

    teacher, _ = load_model(str(base_dir))
    ends = {}
    for repair_teacher in ("", str(base_dir)):
        config = RunConfig(method={"name": "task_vector", "alpha": 2.0, "repair_steps": 6,
                                   "repair_teacher": repair_teacher},
                           trainable=TrainableConfig(mode="all"),
                           train=TrainConfig(lr=3e-3, max_steps=4, batch_size=4, max_length=96, early_stop=False))
        result = Unlearner(copy.deepcopy(taught), tokenizer, config).apply(tiny_request, progress=False)
        assert result.train.second_stage["steps"] == 6
        ends[repair_teacher] = kl_to(teacher, result.model, tokenizer, tiny_request.forget)
    assert ends[str(base_dir)] < 0.7 * ends[""], ends


def test_task_vector_repair_teacher_needs_repair_steps():
    with pytest.raises(ConfigError, match="repair_steps"):
        make_method({"name": "task_vector", "repair_teacher": "default"})
