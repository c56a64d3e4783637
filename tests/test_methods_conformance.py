"""Every registered method: finite loss, gradients reach trainable parameters, parameters change,
and the forget set's likelihood goes down on a tiny model that had learned it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from unlearn.config import RunConfig, TrainableConfig, TrainConfig
from unlearn.methods import METHODS, make_method
from unlearn.metrics.likelihood import qa_mean_logprobs
from unlearn.models.params import select_trainable, trainable_parameters
from unlearn.models.reference import Reference
from unlearn.train.loop import _step_batch, forget_order
from unlearn.unlearner import Unlearner, build_training_data, prepare_method, trainable_for

# Per-method settings for a 4-layer, 32-wide model (RMU's layer must exist; its steering scale is small).
TINY_SETTINGS = {"rmu": {"layer": 2, "steering_coeff": 20.0, "alpha": 1.0}, "adaptive_rmu": {"layer": 2, "alpha": 1.0},
                 "lunar": {"layer": 2},
                 "meow": {"candidates": 2, "top_k": 2, "tries": 4, "memo_tokens": 4, "max_new_tokens": 12, "stride": 8}}
TINY_LR = {"rmu": 1e-2, "adaptive_rmu": 1e-2, "lunar": 1e-2, "mudman": 0.5}  # mudman: the length of each normalised step


@pytest.fixture(autouse=True, scope="module")
def base_distill_teacher(base_dir):
    """base_distill's teacher: the untaught tiny model the `taught` fixture was fine-tuned from."""
    TINY_SETTINGS["base_distill"] = {"teacher": str(base_dir)}


def method_for(name):
    return make_method({"name": name, **TINY_SETTINGS.get(name, {})})


def forget_logprob(model, tokenizer, request) -> float:
    values = qa_mean_logprobs(model, tokenizer, [(q.question, q.answer) for q in request.forget.qa])
    return sum(values) / len(values)


@pytest.mark.parametrize("name", METHODS.names())
def test_one_step_is_finite_and_reaches_trainable_parameters(name, taught, tokenizer, tiny_request):
    method = method_for(name)
    prepare_method(method, taught, tokenizer, tiny_request, TrainConfig(max_length=96))
    data = build_training_data(tokenizer, tiny_request, method, 96)
    model = select_trainable(taught, trainable_for(method, taught, TrainableConfig(mode="all")))
    reference = Reference(model) if method.needs_reference else None
    method.setup(model, reference)
    batch = _step_batch(data, forget_order(len(data.forget), 0)(4), 4, torch.Generator().manual_seed(0), tokenizer.pad_token_id)
    out = method.loss(model, batch, reference)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in trainable_parameters(model)]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@pytest.mark.parametrize("name", METHODS.names())
def test_unlearning_lowers_forget_likelihood_and_changes_parameters(name, taught, tokenizer, tiny_request):
    before = forget_logprob(taught, tokenizer, tiny_request)
    original = {n: p.detach().clone() for n, p in taught.named_parameters()}
    config = RunConfig(
        method={"name": name, **TINY_SETTINGS.get(name, {})},
        trainable=TrainableConfig(mode="all"),
        train=TrainConfig(lr=TINY_LR.get(name, 3e-3), max_steps=10, batch_size=4, max_length=96),
    )
    result = Unlearner(taught, tokenizer, config).apply(tiny_request, progress=False)
    after = forget_logprob(result.model, tokenizer, tiny_request)
    changed = any(not torch.equal(original[n], p) for n, p in result.model.named_parameters())
    assert changed, f"{name} changed no parameter"
    assert after < before - 0.05, f"{name}: forget log-prob {before:.3f} -> {after:.3f}"
    assert result.train.steps == 10
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.train.history)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_defaults_are_documented(name):
    cls = METHODS.get(name)
    assert cls.summary, f"{name} needs a one-line summary"
    doc = __import__(cls.__module__, fromlist=["_"]).__doc__ or ""
    assert "Source:" in doc, f"{name}'s module docstring must cite its source"
    section = paper_index_section(name)
    assert "Source:" in section, f"docs/paper_index.md's section on {name} must cite its source"
    undocumented = [f.name for f in dataclasses.fields(cls) if f"`{f.name}`" not in section]
    assert not undocumented, f"docs/paper_index.md's section on {name} does not give {undocumented}"


def paper_index_section(name: str) -> str:
    """The section of docs/paper_index.md whose heading names the method as `name`."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "paper_index.md").read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    found = [s for s in sections if s.splitlines()[0].endswith(f"(`{name}`)")]
    assert len(found) == 1, f"docs/paper_index.md needs one section headed '... (`{name}`)'"
    return found[0]


def test_lora_reference_is_the_base_model(taught, tokenizer, tiny_request):
    pytest.importorskip("peft")
    model = select_trainable(taught, TrainableConfig(mode="lora", lora_r=4, lora_alpha=8))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
    reference = Reference(model)
    batch = _step_batch(build_training_data(tokenizer, tiny_request, make_method("npo"), 96),
                        [0, 1], 2, torch.Generator().manual_seed(0), tokenizer.pad_token_id)
    with model.disable_adapter():
        base = model(input_ids=batch.forget["input_ids"], attention_mask=batch.forget["attention_mask"]).logits
    ref = reference.forward(input_ids=batch.forget["input_ids"], attention_mask=batch.forget["attention_mask"]).logits
    live = model(input_ids=batch.forget["input_ids"], attention_mask=batch.forget["attention_mask"]).logits
    torch.testing.assert_close(ref, base)
    assert not torch.allclose(live, base)


def test_swap_reference_keeps_originals_and_restores_live_weights(taught, tokenizer):
    model = select_trainable(taught, TrainableConfig(mode="layers", layers="-2:"))
    reference = Reference(model)
    ids = torch.tensor([[5, 6, 7, 8]])
    original = model(input_ids=ids).logits.detach()
    with torch.no_grad():
        for p in trainable_parameters(model):
            p.add_(0.3)
    moved = model(input_ids=ids).logits.detach()
    torch.testing.assert_close(reference.forward(input_ids=ids).logits, original)
    torch.testing.assert_close(model(input_ids=ids).logits.detach(), moved)
    assert reference.state_bytes() < sum(p.numel() * 4 for p in model.parameters())


@pytest.mark.parametrize("name", METHODS.names())
def test_anchor_data_adds_its_term_to_every_method(name, taught, tokenizer, tiny_request):
    """A request's anchor data brings a reference model even to reference-free methods, and its KL term
    is part of each step's loss."""
    from unlearn.data.request import DataSpec

    tiny_request.anchor = DataSpec(texts=["The sky is blue and the grass is green in the spring."])
    config = RunConfig(
        method={"name": name, **TINY_SETTINGS.get(name, {})},
        trainable=TrainableConfig(mode="all"),
        train=TrainConfig(lr=TINY_LR.get(name, 3e-3), max_steps=2, batch_size=4, max_length=96, anchor_weight=5.0),
    )
    history = Unlearner(taught, tokenizer, config).apply(tiny_request, progress=False).train.history
    assert history[0]["anchor"] == pytest.approx(0.0, abs=1e-6)
    assert history[1]["anchor"] > 0


@pytest.mark.parametrize("name", METHODS.names())
def test_benchmark_settings_are_valid_run_settings(name):
    """Each method's declared demo and TOFU settings build a run configuration and the method (no misspelt key)."""
    from unlearn.benchmarks.demo import demo_unlearn_config
    from unlearn.benchmarks.tofu_bench import checked_method
    from unlearn.config import from_dict

    config = from_dict(RunConfig, demo_unlearn_config(name), "demo config")
    assert make_method(config.method).registered_name == name
    assert checked_method(name)[1].registered_name == name


def field_names(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(METHODS.get(name))}


RETAIN_TERM_METHODS = [n for n in METHODS.names() if "retain_loss" in field_names(n)
                       and n != "jensun"]  # jensun has its own retain losses (jsd by default)


@pytest.mark.parametrize("name", RETAIN_TERM_METHODS)
def test_a_retain_term_checks_its_loss_and_asks_for_the_starting_model_only_as_it_needs(name):
    from unlearn.errors import ConfigError

    weight = {"retain_weight": 1.0} if "retain_weight" in field_names(name) else {}
    settings = {"name": name, **TINY_SETTINGS.get(name, {}), **weight}
    assert make_method({**settings, "retain_loss": "kl"}).needs_reference
    assert make_method({**settings, "retain_loss": "kl"}).needs_retain
    with pytest.raises(ConfigError, match="retain_loss 'mse' is unknown"):
        make_method({"name": name, "retain_loss": "mse"})


def test_a_method_module_is_registered_by_being_in_the_package():
    """Adding a method is its file (and its test): the package imports every module in it, so no list to edit."""
    import pkgutil

    import unlearn.methods as package

    modules = {m.name for m in pkgutil.iter_modules(package.__path__)} - {"base", "common"}
    registered_modules = {METHODS.get(n).__module__.rsplit(".", 1)[-1] for n in METHODS.names()}
    assert modules == registered_modules


def test_pdu_multiplier_grows_while_the_retain_loss_is_above_its_bound(taught, tokenizer, tiny_request):
    settings = {"name": "pdu", "retain_eps": 0.0, "dual_step_size": 0.5}  # bound 0: every retain loss is above it
    method = make_method(settings)
    config = RunConfig(method=settings, trainable=TrainableConfig(mode="all"),
                       train=TrainConfig(lr=3e-3, max_steps=3, batch_size=4, max_length=96))
    result = Unlearner(taught, tokenizer, config, method).apply(tiny_request, progress=False)
    history = result.train.history
    assert method.multiplier > 1.0 + 0.5 * 2  # three ascents of 0.5 x (a retain NLL above 1)
    assert [round(h["multiplier"], 6) for h in history][0] == 1.0  # the first step used the starting value


def test_swap_reference_follows_the_model_to_another_device(taught):
    """The training loop moves the model to the accelerator after the Reference saved its values."""
    model = select_trainable(taught, TrainableConfig(mode="layers", layers="-1:"))
    reference = Reference(model)
    ids = torch.tensor([[5, 6, 7, 8]])
    original = model(input_ids=ids).logits.detach()
    model.to(torch.float64)  # stands in for the move to a GPU: the same Parameter objects get new storage
    with reference.active() as ref_model:
        assert {p.dtype for p in ref_model.parameters()} == {torch.float64}
        torch.testing.assert_close(ref_model(input_ids=ids).logits.float(), original)


@pytest.mark.parametrize("settings", [{"retain_vector": "orthogonal"}, {"retain_vector": "subtract", "alpha": 2.0},
                                      {"repair_steps": 3}])
def test_task_vector_options_run_end_to_end(settings, taught, tokenizer, tiny_request):
    """The retain fine-tuning and the repair add their steps; the forget data ends less likely than it started."""
    before = forget_logprob(taught, tokenizer, tiny_request)
    config = RunConfig(method={"name": "task_vector", **settings}, trainable=TrainableConfig(mode="all"),
                       train=TrainConfig(lr=3e-3, max_steps=4, batch_size=4, max_length=96, early_stop=False))
    result = Unlearner(taught, tokenizer, config).apply(tiny_request, progress=False)
    extra = 4 if "retain_vector" in settings else 0
    assert result.train.second_stage["steps"] == extra + settings.get("repair_steps", 0)
    assert forget_logprob(result.model, tokenizer, tiny_request) < before - 0.05


def test_task_vector_repair_general_replays_the_starting_models_broad_answers(taught, tokenizer, tiny_request):
    """With `repair_general`, the repair also trains on the starting model's own answers to broad prompts: after the
    same negation and repair steps those answers are more likely than after the plain retain repair."""
    import copy

    from unlearn.methods.common import own_answers

    answers = [(qa.question, qa.answer) for qa in own_answers(taught, tokenizer, 4)]
    assert answers and all(answer.strip() for _, answer in answers)
    ends = {}
    for general in (0, 4):
        config = RunConfig(method={"name": "task_vector", "alpha": 2.0, "repair_steps": 6, "repair_general": general},
                           trainable=TrainableConfig(mode="all"),
                           train=TrainConfig(lr=3e-3, max_steps=4, batch_size=4, max_length=96, early_stop=False))
        result = Unlearner(copy.deepcopy(taught), tokenizer, config).apply(tiny_request, progress=False)
        assert result.train.second_stage["steps"] == 6
        values = qa_mean_logprobs(result.model, tokenizer, answers)
        ends[general] = sum(values) / len(values)
    assert ends[4] > ends[0] + 0.25, ends


@pytest.mark.parametrize("settings", [{"repair_general": 4}, {"repair_general": -1, "repair_steps": 2},
                                      {"density": 0.0}, {"density": 1.5}])
def test_task_vector_repair_general_and_density_are_checked(settings):
    from unlearn.errors import ConfigError

    with pytest.raises(ConfigError, match=next(iter(settings))):
        make_method({"name": "task_vector", **settings})


def test_task_vector_retain_options_need_retain_data(taught, tokenizer, tiny_request):
    from unlearn.data.request import DataSpec
    from unlearn.errors import ConfigError

    tiny_request.retain = DataSpec()
    original = {n: p.detach().clone() for n, p in taught.named_parameters()}
    config = RunConfig(method={"name": "task_vector", "repair_steps": 2}, trainable=TrainableConfig(mode="all"),
                       train=TrainConfig(lr=3e-3, max_steps=2, batch_size=4, max_length=96, early_stop=False))
    with pytest.raises(ConfigError, match="need retain data"):
        Unlearner(taught, tokenizer, config).apply(tiny_request, progress=False)
    assert all(torch.equal(original[n], p) for n, p in taught.named_parameters())  # refused before training
