"""Invariants of the training loop."""

from __future__ import annotations

import copy
import os
import signal
import time

import pytest
import torch

from unlearn.config import TrainableConfig, TrainConfig
from unlearn.data.collate import collate
from unlearn.data.formatting import Example
from unlearn.errors import ConfigError, TrainingDiverged
from unlearn.interrupt import raise_if_interrupted, remembered_interrupts
from unlearn.methods.base import LossMethod, LossOutput, StepBatch
from unlearn.metrics.likelihood import example_logprobs
from unlearn.models.params import select_trainable
from unlearn.train import FineTune, TrainingData, train
from unlearn.train.loop import lr_factor, total_steps


def same_length_examples(n: int = 8, length: int = 12) -> list[Example]:
    gen = torch.Generator().manual_seed(1)
    rows = torch.randint(4, 90, (n, length), generator=gen).tolist()
    return [Example(tuple(r), tuple([-100] * 4 + r[4:])) for r in rows]


def trained_params(model, cfg: TrainConfig, data: TrainingData, method=None):
    model = select_trainable(copy.deepcopy(model), TrainableConfig(mode="all"))
    train(model, method or FineTune(retain_weight=0.0), data, cfg, pad_id=0, progress=False)
    return {n: p.detach() for n, p in model.named_parameters()}


def test_gradient_accumulation_matches_a_large_batch(tiny_model):
    data = TrainingData(same_length_examples())
    big = trained_params(tiny_model, TrainConfig(lr=1e-2, max_steps=2, batch_size=4, grad_accum=1), data)
    small = trained_params(tiny_model, TrainConfig(lr=1e-2, max_steps=2, batch_size=2, grad_accum=2), data)
    for name in big:
        torch.testing.assert_close(big[name], small[name], atol=2e-5, rtol=1e-4)


def ragged_examples(n: int = 8) -> list[Example]:
    """Examples whose answers have very different lengths (2 to 23 tokens)."""
    gen = torch.Generator().manual_seed(2)
    examples = []
    for i in range(n):
        prompt, answer = 4, 2 + (i * 7) % 22
        row = torch.randint(4, 90, (prompt + answer,), generator=gen).tolist()
        examples.append(Example(tuple(row), tuple([-100] * prompt + row[prompt:])))
    return examples


@pytest.mark.parametrize("retain", [False, True])
def test_gradient_accumulation_weights_micro_batches_by_tokens(tiny_model, retain):
    """Token means over a step of ragged examples: accumulating micro-batches gives the large batch's update."""
    examples = ragged_examples()
    data = TrainingData(examples, retain=list(reversed(examples)) if retain else [])
    method = FineTune(retain_weight=1.0 if retain else 0.0)
    # SGD: the update is the gradient itself (Adam would blow float noise in near-zero gradients up to ~lr)
    big = trained_params(tiny_model, TrainConfig(lr=0.5, max_steps=2, batch_size=4, grad_accum=1, optimizer="sgd"),
                         data, method)
    small = trained_params(tiny_model, TrainConfig(lr=0.5, max_steps=2, batch_size=2, grad_accum=2, optimizer="sgd",
                                                   retain_batch_size=2), data, method)
    start = dict(tiny_model.named_parameters())
    assert any((big[n] - start[n]).abs().max() > 1e-3 for n in big)  # the step moved the weights
    for name in big:
        torch.testing.assert_close(big[name], small[name], atol=1e-6, rtol=1e-5)


def test_a_device_the_process_cannot_switch_to_is_a_clear_error(tiny_model, monkeypatch):
    """accelerate keeps the first device a process chose; training elsewhere must not silently stay put."""
    import unlearn.train.loop as loop

    monkeypatch.setattr(loop, "model_device", lambda: torch.device("cuda", 0))
    with pytest.raises(ConfigError, match="already trains on cpu"):
        trained_params(tiny_model, TrainConfig(lr=1e-2, max_steps=1, batch_size=2), TrainingData(same_length_examples()))


def test_seeded_runs_are_identical_and_seeds_differ(tiny_model):
    data = TrainingData(same_length_examples(12))
    cfg = TrainConfig(lr=1e-2, max_steps=3, batch_size=4, seed=7)
    a = trained_params(tiny_model, cfg, data)
    b = trained_params(tiny_model, cfg, data)
    c = trained_params(tiny_model, TrainConfig(lr=1e-2, max_steps=3, batch_size=4, seed=8), data)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_padding_does_not_change_sequence_logprobs(tiny_model):
    short = Example((5, 6, 7, 8), (-100, -100, 7, 8))
    long = Example(tuple(range(10, 30)), tuple([-100] * 5 + list(range(15, 30))))
    alone = example_logprobs(tiny_model, [short], pad_id=0)[0][0]
    padded = example_logprobs(tiny_model, [short, long], pad_id=0)[0][0]
    assert padded == pytest.approx(alone, abs=1e-5)


class ExplodingLoss(LossMethod):
    """Finite for `good_steps` steps, then NaN."""

    def __init__(self, good_steps: int):
        self.calls = 0
        self.good_steps = good_steps

    def loss(self, model, batch, reference):
        self.calls += 1
        value = model(input_ids=batch.forget["input_ids"]).logits.mean()
        if self.calls > self.good_steps:
            value = value * float("nan")
        return LossOutput(value)


def test_nan_loss_stops_and_restores_last_good_weights(tiny_model):
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    cfg = TrainConfig(lr=1e-2, max_steps=5, batch_size=2)
    snapshots = []

    class Recording(ExplodingLoss):
        def loss(self, model, batch, reference):
            snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
            return super().loss(model, batch, reference)

    with pytest.raises(TrainingDiverged, match="train.lr"):
        train(model, Recording(good_steps=2), TrainingData(same_length_examples()), cfg, pad_id=0, progress=False)
    # the weights are those of the last step whose loss was finite (step 2's inputs), not the ones that gave NaN
    last_good = snapshots[1]
    assert all(torch.equal(p.detach(), last_good[n]) for n, p in model.named_parameters())
    assert not all(torch.equal(p.detach(), snapshots[2][n]) for n, p in model.named_parameters())


def test_early_stop_when_probes_are_forgotten(tiny_model):
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    cfg = TrainConfig(lr=1e-3, max_steps=20, batch_size=2, early_stop=True, early_stop_every=3)
    accuracies = iter([1.0, 0.5, 0.0, 0.0])
    result = train(model, FineTune(retain_weight=0.0), TrainingData(same_length_examples()), cfg, pad_id=0,
                   probe_check=lambda m: next(accuracies), progress=False)
    assert result.stopped_early and result.steps == 9
    assert result.history[-1]["forget_probe_accuracy"] == 0.0


def test_bad_settings_are_named(tiny_model):
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    with pytest.raises(ConfigError, match="schedule"):
        train(model, FineTune(), TrainingData(same_length_examples()), TrainConfig(schedule="sqrt"), pad_id=0)
    with pytest.raises(ConfigError, match="optimizer 'adam'.*adamw, sgd, sign, zo, hybrid"):
        train(model, FineTune(), TrainingData(same_length_examples()), TrainConfig(optimizer="adam"), pad_id=0)
    with pytest.raises(ConfigError, match="empty"):
        train(model, FineTune(), TrainingData([]), TrainConfig(), pad_id=0)


def test_sgd_step_is_the_clipped_gradient_times_lr(tiny_model):
    data = TrainingData(same_length_examples(4))
    cfg = TrainConfig(lr=0.5, max_steps=1, batch_size=4, optimizer="sgd", max_grad_norm=1e9)
    after = trained_params(tiny_model, cfg, data)
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    batch = collate(data.forget, 0)
    FineTune(retain_weight=0.0).loss(model, StepBatch(forget=batch), None).loss.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(after[name], p.detach() - 0.5 * p.grad, atol=1e-6, rtol=1e-5)


def test_sign_step_moves_each_parameter_by_lr_against_its_gradient(tiny_model):
    data = TrainingData(same_length_examples(4))
    cfg = TrainConfig(lr=0.01, max_steps=1, batch_size=4, optimizer="sign", max_grad_norm=1e9, warmup_steps=0)
    after = trained_params(tiny_model, cfg, data)
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    batch = collate(data.forget, 0)
    FineTune(retain_weight=0.0).loss(model, StepBatch(forget=batch), None).loss.backward()
    for name, p in model.named_parameters():  # first step: sign(m) = sign((1 - beta) g) = sign(g)
        torch.testing.assert_close(after[name], p.detach() - 0.01 * torch.sign(p.grad), atol=1e-6, rtol=1e-5)


def test_spsa_estimate_of_a_quadratic_is_the_projected_gradient():
    from unlearn.train.loop import zo_estimate

    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    loss = lambda: float(0.5 * (theta.detach() ** 2).sum())  # noqa: E731 - gradient θ
    value, (estimate,) = zo_estimate([theta], loss, 1e-3, 1, torch.Generator().manual_seed(3))
    u = torch.randn(3, generator=torch.Generator().manual_seed(3))
    # for a quadratic the central difference is exact: (L(θ+μu) − L(θ−μu)) / 2μ = u·θ
    torch.testing.assert_close(estimate, (u @ theta.detach()) * u, atol=1e-4, rtol=1e-3)
    assert torch.equal(theta.detach(), torch.tensor([1.0, -2.0, 0.5]))  # θ restored
    assert value == pytest.approx(float(0.5 * (theta.detach() ** 2).sum()), rel=1e-5)
    # many directions average to the gradient itself
    _, (mean,) = zo_estimate([theta], loss, 1e-3, 4000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mean, theta.detach(), atol=0.12, rtol=0.0)


def test_zeroth_order_and_hybrid_optimizers_train(tiny_model):
    data = TrainingData(same_length_examples(4))
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    cfg = TrainConfig(lr=1e-3, max_steps=4, batch_size=4, optimizer="zo", zo_queries=2)
    history = train(model, FineTune(retain_weight=0.0), data, cfg, pad_id=0, progress=False).history
    assert all(r.get("zeroth_order") for r in history) and all(r["grad_norm"] > 0 for r in history)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    cfg = TrainConfig(lr=1e-3, max_steps=6, batch_size=4, optimizer="hybrid", zo_every=3, zo_lr=1e-4)
    history = train(model, FineTune(retain_weight=0.0), data, cfg, pad_id=0, progress=False).history
    assert [bool(r.get("zeroth_order")) for r in history] == [False, False, True, False, False, True]
    with pytest.raises(ConfigError, match="zo_mu > 0"):
        train(model, FineTune(), data, TrainConfig(optimizer="zo", zo_mu=0.0), pad_id=0)


def test_schedule_and_step_count():
    assert [lr_factor(s, 2, 10, "constant") for s in (0, 1, 5)] == [0.5, 1.0, 1.0]
    assert lr_factor(6, 2, 10, "cosine") == pytest.approx(0.5)
    assert total_steps(10, TrainConfig(epochs=2, batch_size=4, grad_accum=1)) == 6
    assert total_steps(10, TrainConfig(max_steps=7)) == 7


def test_retain_batch_size_sets_retain_examples_per_step(tiny_model):
    seen = []

    class Recording(LossMethod):
        def loss(self, model, batch, reference):
            seen.append((batch.forget["input_ids"].shape[0], batch.retain["input_ids"].shape[0]))
            return LossOutput(model(input_ids=batch.forget["input_ids"]).logits.mean())

    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    data = TrainingData(same_length_examples(), retain=same_length_examples(5))
    train(model, Recording(), data, TrainConfig(lr=1e-3, max_steps=2, batch_size=4, retain_batch_size=3), 0, progress=False)
    train(model, Recording(), data, TrainConfig(lr=1e-3, max_steps=1, batch_size=4), 0, progress=False)
    assert seen == [(4, 3), (4, 3), (4, 4)]


def test_anchor_holds_the_model_on_its_data(tiny_model):
    """Fine-tuning on one set moves the model's distributions on another; the anchor term
    (KL to the model before training) on that other set holds them close, and is logged."""
    from unlearn.methods.common import kl_on_answers
    from unlearn.models.reference import Reference

    anchor = same_length_examples(6, 16)
    gen = torch.Generator().manual_seed(3)
    forget = [Example(tuple(r), tuple([-100] * 4 + r[4:])) for r in torch.randint(4, 90, (8, 12), generator=gen).tolist()]
    batch = collate(anchor, 0)
    before = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.detach()

    def drift(weight: float) -> tuple[float, list[dict]]:
        model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
        cfg = TrainConfig(lr=1e-2, max_steps=8, batch_size=4, anchor_weight=weight, anchor_batch_size=6)
        result = train(model, FineTune(retain_weight=0.0), TrainingData(forget, anchor=anchor), cfg, 0,
                       reference=Reference(model), progress=False)
        with torch.no_grad():
            after = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return kl_on_answers(after, before, batch["labels"]).item(), result.history

    free, free_history = drift(0.0)
    held, held_history = drift(10.0)
    assert free > 0.05, free
    assert held < free / 3, (held, free)
    assert "anchor" not in free_history[0] and held_history[0]["anchor"] == pytest.approx(0.0, abs=1e-6)
    assert held_history[-1]["anchor"] > 0


def test_anchor_needs_a_reference_and_a_sane_weight(tiny_model):
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    data = TrainingData(same_length_examples(), anchor=same_length_examples(3))
    with pytest.raises(ConfigError, match="reference"):
        train(model, FineTune(retain_weight=0.0), data, TrainConfig(max_steps=1), pad_id=0, progress=False)
    with pytest.raises(ConfigError, match="anchor_weight"):
        train(model, FineTune(retain_weight=0.0), data, TrainConfig(max_steps=1, anchor_weight=-1.0), pad_id=0)


def test_similar_pools_rank_retain_items_by_shared_structure():
    """Forget 'When was X born?': the retain items asking the same of others come first, whatever their names."""
    from unlearn.train.similar import jaccard, similar_pools, structure_tokens

    template = [1, 2]  # tokens every example has (a chat template): left out of the similarity
    born, phone = [10, 11, 12], [20, 21, 22, 23]

    def qa(question: list[int], name: list[int], answer: list[int]) -> Example:
        prompt = template + question[:1] + name + question[1:]
        return Example(tuple(prompt + answer), tuple([-100] * len(prompt) + answer))

    forget = [qa(born, [50, 51], [70]), qa(phone, [50, 51], [71])]
    retain = [qa(phone, [60, 61], [72]), qa(born, [62, 63, 64], [73]), qa(phone, [65], [74]), qa(born, [66], [75])]
    assert structure_tokens(forget[0]) == frozenset(template + born + [50, 51])
    assert jaccard(frozenset({1, 2}), frozenset({2, 3})) == pytest.approx(1 / 3)
    assert jaccard(frozenset(), frozenset()) == 0.0
    pools = similar_pools(forget, retain, pool=2)
    assert [sorted(p) for p in pools] == [[1, 3], [0, 2]]
    assert similar_pools(forget, [qa([30], [31], [76])]) == [[0], [0]]  # nothing shared: the whole set
    assert pools[0] == [3, 1]  # the shorter name shares a larger part of the prompt
    text = Example((5, 6, 7), (5, 6, 7))  # a text trains on every token: all of them describe it
    assert structure_tokens(text) == frozenset({5, 6, 7})


def test_retain_similar_draws_each_steps_retain_batch_from_the_forget_items_pools(tiny_model):
    from unlearn.train.hooks import UniformRetain
    from unlearn.train.similar import SimilarRetain

    pools = [[0, 1], [2], [3]]
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        picks = SimilarRetain(pools, 10, similar=3).picks(4, [1, 2], gen)
        assert len(picks) == 4 and picks[0] == 2 and picks[1] == 3 and picks[2] == 2
    assert len(SimilarRetain(pools, 10, similar=5).picks(2, [0], gen)) == 2  # never more than the batch
    assert all(p in (0, 1) for p in SimilarRetain(pools, 10, similar=5).picks(2, [0], gen))
    assert len(UniformRetain(10).picks(3, [0], gen)) == 3  # the default: uniform

    seen = []

    class Recording(LossMethod):
        def loss(self, model, batch, reference):
            seen.append((batch.forget["input_ids"][0, -1].item(), batch.retain["input_ids"][0, -1].item()))
            return LossOutput(model(input_ids=batch.forget["input_ids"]).logits.mean())

    forget = [Example((1, 2, 30, 40), (-100, -100, -100, 40)), Example((1, 3, 31, 41), (-100, -100, -100, 41))]
    retain = [Example((1, 2, 30, 50 + i), (-100, -100, -100, 50 + i)) for i in range(3)]
    retain += [Example((1, 3, 31, 60 + i), (-100, -100, -100, 60 + i)) for i in range(3)]
    retain += [Example((1, 9, 9, 70 + i), (-100, -100, -100, 70 + i)) for i in range(20)]
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    cfg = TrainConfig(lr=1e-3, max_steps=6, batch_size=1, retain_batch_size=2, retain_similar=1)
    train(model, Recording(), TrainingData(forget, retain=retain), cfg, 0, progress=False)
    # the first retain example of every step asks what that step's forget example asks
    assert len(seen) == 6 and {f for f, _ in seen} == {40, 41}
    assert all(50 <= r < 53 if f == 40 else 60 <= r < 63 for f, r in seen), seen
    with pytest.raises(ConfigError, match="retain_similar"):
        train(model, Recording(), TrainingData(forget, retain=retain),
              TrainConfig(lr=1e-3, max_steps=1, retain_similar=-1), 0, progress=False)


def test_repair_steps_train_on_retain_alone_while_the_forget_probes_stay_forgotten(tiny_model):
    """After the early stop, repair steps lower the retain loss further; when the forget probes come back the
    weights return to the last checked point (here: the model as unlearning left it)."""
    forget = same_length_examples(4)
    retain = same_length_examples(6, 10)
    batch = collate(retain, 0)

    def run(repair_steps: int, answers_after_unlearning: float):
        calls = []

        def probe_check(model) -> float:
            calls.append(1)
            return 0.0 if len(calls) == 1 else answers_after_unlearning  # the first check stops unlearning

        model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
        cfg = TrainConfig(lr=1e-2, max_steps=4, batch_size=4, early_stop=True, early_stop_every=2,
                          repair_steps=repair_steps)
        result = train(model, FineTune(retain_weight=0.1), TrainingData(forget, retain=retain), cfg, 0,
                       probe_check=probe_check, progress=False)
        with torch.no_grad():
            loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=batch["labels"]).loss.item()
        return result, loss, {n: p.detach().clone() for n, p in model.named_parameters()}, len(calls)

    plain, plain_loss, plain_params, _ = run(0, 0.0)
    repaired, repaired_loss, _, checks = run(6, 0.0)
    assert plain.steps == repaired.steps == 2 and plain.stopped_early and plain.repair_steps == 0
    assert repaired.repair_steps == 6 and checks == 1 + 3
    assert repaired_loss < plain_loss - 0.05, (repaired_loss, plain_loss)
    undone, undone_loss, undone_params, checks = run(6, 1.0)
    assert undone.repair_steps == 0 and checks == 2 and undone_loss == pytest.approx(plain_loss)
    for name, p in plain_params.items():
        torch.testing.assert_close(undone_params[name], p)


def test_repair_steps_need_probe_checks_and_data_to_repair_with(tiny_model):
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    cfg = TrainConfig(lr=1e-3, max_steps=1, batch_size=4, repair_steps=2)
    with pytest.raises(ConfigError, match="repair_steps"):
        train(model, FineTune(retain_weight=0.0), TrainingData(same_length_examples(), retain=same_length_examples(3)),
              cfg, 0, progress=False)
    for data in (TrainingData(same_length_examples()), TrainingData(same_length_examples(), retain=same_length_examples(3))):
        with pytest.raises(ConfigError, match="repair_steps"):  # nothing to repair with (no retain, or weight 0)
            train(model, FineTune(retain_weight=0.0), data, cfg, 0, probe_check=lambda m: 0.0, progress=False)
    with pytest.raises(ConfigError, match="repair_steps"):
        train(model, FineTune(retain_weight=0.0), TrainingData(same_length_examples()),
              TrainConfig(lr=1e-3, max_steps=1, repair_steps=-1), 0, progress=False)


class SwallowsCtrlCOnStep(LossMethod):
    """A finite loss; on step `at` a SIGINT arrives and is dropped, as a finalizer run by the GC would drop it."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def loss(self, model, batch, reference):
        self.calls += 1
        if self.calls == self.at:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # the handler runs here and raises
            except KeyboardInterrupt:
                pass
        return LossOutput(model(input_ids=batch.forget["input_ids"]).logits.mean())


def test_a_dropped_ctrl_c_stops_training_at_the_next_step(tiny_model):
    model = select_trainable(copy.deepcopy(tiny_model), TrainableConfig(mode="all"))
    method = SwallowsCtrlCOnStep(at=2)
    previous = signal.getsignal(signal.SIGINT)
    with remembered_interrupts():
        with pytest.raises(KeyboardInterrupt):
            train(model, method, TrainingData(same_length_examples()), TrainConfig(lr=1e-3, max_steps=10, batch_size=2),
                  pad_id=0, progress=False)
    assert method.calls == 2  # the step that dropped it finished; the next one did not start
    assert signal.getsignal(signal.SIGINT) is previous
    raise_if_interrupted()  # outside the block nothing is remembered
