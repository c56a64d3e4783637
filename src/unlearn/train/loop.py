"""THE training loop: every loss method (and fine-tuning) runs through `train`, on accelerate.

The same code runs on CPU, one GPU or several (launch with `accelerate launch`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..config import ZEROTH_ORDER, TrainConfig
from ..data.collate import collate, to_device
from ..data.formatting import Example
from ..errors import ConfigError, TrainingDiverged
from ..interrupt import raise_if_interrupted
from ..methods.base import LossMethod, LossOutput, StepBatch
from ..methods.common import retain_term
from ..models.loading import model_device
from ..models.logprobs import IGNORE
from ..models.params import trainable_parameters
from .hooks import LoopState, RetainSampler, TrainHooks, UniformRetain, hooks_from_config

SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class TrainingData:
    """Examples for one run. `forget_alt[i]` answers the prompt of `forget[i]` differently (e.g. a refusal).
    `anchor`: general examples whose next-token distributions are held to the reference's (`anchor_term`)."""

    forget: Sequence[Example]
    retain: Sequence[Example] = ()
    forget_alt: Sequence[Example] | None = None
    anchor: Sequence[Example] = ()

    def uses_anchor(self, cfg: TrainConfig) -> bool:
        return bool(self.anchor) and cfg.anchor_weight > 0


@dataclass
class TrainResult:
    steps: int
    seconds: float
    stopped_early: bool = False
    history: list[dict] = field(default_factory=list)
    repair_steps: int = 0  # retain-only steps kept after unlearning (train.repair_steps)
    second_stage: dict | None = None  # a method's stage after training (undo: distillation): steps, seconds
    processes: int = 1  # data-parallel processes that shared each step (accelerate launch)


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def total_steps(n_forget: int, cfg: TrainConfig) -> int:
    """Optimizer steps of a run: `max_steps`, or `epochs` passes over the forget set."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    micro_per_epoch = math.ceil(n_forget / cfg.batch_size)
    return max(1, math.ceil(cfg.epochs * micro_per_epoch / cfg.grad_accum))


def forget_order(n: int, seed: int) -> Callable[[], list[int]]:
    """An endless, seeded stream of shuffled epochs, one index at a time via the returned callable."""
    generator = torch.Generator().manual_seed(seed)
    queue: list[int] = []

    def take(k: int) -> list[int]:
        nonlocal queue
        while len(queue) < k:
            queue += torch.randperm(n, generator=generator).tolist()
        head, queue = queue[:k], queue[k:]
        return head

    return take


def _check_config(cfg: TrainConfig) -> None:
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"train.schedule '{cfg.schedule}' is unknown; use one of {', '.join(SCHEDULES)}")
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer '{cfg.optimizer}' is unknown; use one of: {', '.join(OPTIMIZERS)}")
    if cfg.optimizer in ZEROTH_ORDER and (cfg.zo_mu <= 0 or cfg.zo_queries < 1 or cfg.zo_lr <= 0 or cfg.zo_every < 1):
        raise ConfigError("train.optimizer zo/hybrid needs zo_mu > 0, zo_queries >= 1, zo_lr > 0 and zo_every >= 1")
    for name in ("batch_size", "grad_accum"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"train.{name} must be at least 1")
    for name in ("retain_batch_size", "anchor_batch_size"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"train.{name} must be 0 (same as batch_size) or positive")
    if cfg.anchor_weight < 0:
        raise ConfigError("train.anchor_weight must be 0 (off) or positive")
    if cfg.lr is not None and cfg.lr <= 0:
        raise ConfigError("train.lr must be positive")


def restore_params(params: list[torch.nn.Parameter], snapshot: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, saved in zip(params, snapshot, strict=True):
            p.copy_(saved)


def save_params(params: list[torch.nn.Parameter], snapshot: list[torch.Tensor]) -> None:
    """Copy the parameters into `snapshot` in place (the counterpart of `restore_params`)."""
    with torch.no_grad():
        for p, saved in zip(params, snapshot, strict=True):
            saved.copy_(p)


def forget_accuracy(model, probe_check, accelerator) -> float:
    """The forget probes' accuracy, asked of the model in eval mode; the model is left in train mode."""
    model.eval()
    accuracy = probe_check(accelerator.unwrap_model(model))
    model.train()
    return accuracy


def train(
    model,
    method: LossMethod,
    data: TrainingData,
    cfg: TrainConfig,
    pad_id: int,
    reference=None,
    probe_check: Callable[[object], float] | None = None,
    progress: bool = True,
    description: str = "unlearning",
    on_step: Callable[[int], None] | None = None,
    hooks: TrainHooks | None = None,
) -> TrainResult:
    """Run `method` on `data` for the configured budget; the model is updated in place.

    Stops early when `cfg.early_stop` and `probe_check(model)` (forget-probe accuracy) drops to
    `cfg.early_stop_accuracy`. `on_step(n)` is called after optimizer step n. A NaN/inf loss or gradient
    restores the weights from before the last update and raises TrainingDiverged. `hooks`: how each step's
    retain examples are drawn and the stages after the loop (train/hooks.py; by default from `cfg`).
    """
    from accelerate import Accelerator

    _check_config(cfg)
    if not data.forget:
        raise ConfigError("the forget set is empty: nothing to train on")
    if method.needs_retain and not data.retain:
        raise ConfigError(
            f"method '{getattr(method, 'registered_name', type(method).__name__)}' needs retain data; add retain "
            "examples to the request (retain.qa / retain.texts) or set its retain_weight=0"
        )
    if method.needs_alternate_answers and (data.forget_alt is None or len(data.forget_alt) != len(data.forget)):
        raise ConfigError("this method needs an alternative answer for every forget example (QA forget data)")
    if data.uses_anchor(cfg) and reference is None:
        raise ConfigError("anchor data needs a reference model (the model before unlearning) to hold it to")
    hooks = hooks or hooks_from_config(cfg, method, data, probe_check)

    torch.manual_seed(cfg.seed)
    on_cpu = cfg.cpu or model_device().type == "cpu"
    accelerator = Accelerator(cpu=on_cpu)
    if (accelerator.device.type == "cpu") != on_cpu:  # accelerate keeps the first device a process chose
        raise ConfigError(f"this process already trains on {accelerator.device.type} (accelerate keeps one device per "
                          f"process); run the {'CPU' if on_cpu else 'GPU'} training in a new process")
    world, rank = accelerator.num_processes, accelerator.process_index
    if world > 1:
        _check_data_parallel(cfg, method, world)
    params = trainable_parameters(model)
    if not params:
        raise ConfigError("no trainable parameters: check the `trainable` settings")
    lr = cfg.lr if cfg.lr is not None else method.default_lr
    optimizer = make_optimizer(cfg.optimizer, params, lr, cfg.weight_decay)
    steps = total_steps(len(data.forget), cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, steps, cfg.schedule)
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    method.setup(accelerator.unwrap_model(model), reference)
    own_update = getattr(method, "update", None)
    if own_update is not None and (cfg.grad_accum > 1 or cfg.optimizer in ZEROTH_ORDER):
        raise ConfigError(f"method '{getattr(method, 'registered_name', type(method).__name__)}' makes its own "
                          "updates, one per step: set train.grad_accum=1 and a first-order train.optimizer")
    zo_generator = torch.Generator().manual_seed(cfg.seed + 4)

    take_forget = forget_order(len(data.forget), cfg.seed)
    retain_generator = torch.Generator().manual_seed(cfg.seed + 1)
    anchor_generator = torch.Generator().manual_seed(cfg.seed + 2)
    snapshot = [p.detach().clone() for p in params]
    result = TrainResult(steps=0, seconds=0.0, processes=world)
    start = time.perf_counter()
    model.train()
    bar = tqdm(total=steps, desc=description, disable=not progress or not accelerator.is_main_process, leave=False)
    try:
        for step in range(steps):
            raise_if_interrupted()
            logs_sum: dict[str, float] = {}
            loss_sum = 0.0
            zo_now = is_zo_step(cfg, step)
            zo_grads = [torch.zeros_like(p) for p in params] if zo_now else []
            draws = []
            for _ in range(cfg.grad_accum):
                batch = _step_batch(data, take_forget(cfg.batch_size), cfg.retain_batch_size or cfg.batch_size,
                                    retain_generator, pad_id, hooks.retain_sampler)
                anchor = None
                if data.uses_anchor(cfg):  # drawn once: a zeroth-order estimate must see the same batch twice
                    anchor = sample_batch(data.anchor, cfg.anchor_batch_size or cfg.batch_size, anchor_generator, pad_id)
                draws.append((batch, anchor))
            if world > 1:  # every process draws the same step and trains on its own part of each micro-batch
                parts = [split_draw(draw, world) for draw in draws]
                mark_token_shares([part for micro in parts for part in micro])
                draws = [micro[rank] for micro in parts]
            elif cfg.grad_accum > 1:
                mark_token_shares(draws)
            for micro, (batch, anchor) in enumerate(draws):
                batch = StepBatch(
                    forget=to_device(batch.forget, accelerator.device),
                    retain=to_device(batch.retain, accelerator.device) if batch.retain else None,
                    forget_alt=to_device(batch.forget_alt, accelerator.device) if batch.forget_alt else None,
                )
                anchor = None if anchor is None else to_device(anchor, accelerator.device)
                if own_update is not None:  # the method changes the weights itself (e.g. mudman)
                    out = own_update(model, batch, reference, optimizer.param_groups[0]["lr"],
                                     None if anchor is None else (anchor, cfg.anchor_weight))
                    if not torch.isfinite(out.loss) or not all(torch.isfinite(p).all() for p in params):
                        restore_params(params, snapshot)
                        raise TrainingDiverged(f"the update became non-finite at step {step}; weights restored to "
                                               f"the last good step. Lower train.lr (now {lr})")
                    loss_sum += out.loss.item()
                    logs_sum = dict(out.logs)
                    continue

                def step_loss(batch=batch, anchor=anchor) -> LossOutput:
                    out = method.loss(model, batch, reference)
                    if anchor is not None:
                        out = anchored(out, anchor_term(model, anchor, reference), cfg.anchor_weight)
                    return out

                if zo_now:
                    value, estimate = zo_estimate(params, lambda: float(step_loss().loss), cfg.zo_mu, cfg.zo_queries,
                                                  zo_generator)
                    for total, part in zip(zo_grads, estimate, strict=True):
                        total.add_(part, alpha=1.0 / cfg.grad_accum)
                    loss_sum += value / cfg.grad_accum
                    continue
                sync = accelerator.no_sync(model) if micro < cfg.grad_accum - 1 else nullcontext()
                with sync:
                    out = step_loss()
                    if not all_finite(out.loss, accelerator):
                        restore_params(params, snapshot)
                        raise TrainingDiverged(
                            f"loss became {out.loss.item()} at step {step}; weights restored to the last good step. "
                            f"Lower train.lr (now {lr}) or raise train.max_grad_norm clipping"
                        )
                    accelerator.backward(out.loss / cfg.grad_accum)
                loss_sum += out.loss.item() / cfg.grad_accum
                for key, value in out.logs.items():
                    logs_sum[key] = logs_sum.get(key, 0.0) + value / cfg.grad_accum
            if zo_now:  # plain SGD on the SPSA estimate: no clipping, the optimizer's state untouched
                rate = cfg.zo_lr if cfg.optimizer == "hybrid" else lr * lr_factor(step, cfg.warmup_steps, steps, cfg.schedule)
                grad_norm = zeroth_order_update(params, zo_grads, rate, snapshot, loss_sum, step)
            else:
                grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
                if not torch.isfinite(torch.as_tensor(grad_norm)):
                    optimizer.zero_grad(set_to_none=True)
                    restore_params(params, snapshot)
                    raise TrainingDiverged(
                        f"gradient norm became {float(grad_norm)} at step {step}; weights restored to the last good "
                        f"step. Lower train.lr (now {lr})"
                    )
                save_params(params, snapshot)
                optimizer.step()
            if not zo_now or cfg.optimizer == "hybrid":  # zo alone never steps its optimizer: its rate is computed above
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps = step + 1
            if world > 1:  # each process saw its part of the step: the step's loss is their mean
                loss_sum, logs_sum = process_means(accelerator, loss_sum, logs_sum)
            record = {"step": step + 1, "loss": loss_sum, "grad_norm": float(grad_norm),
                      "lr": rate if zo_now else scheduler.get_last_lr()[0], **logs_sum,
                      **({"zeroth_order": True} if zo_now else {})}
            result.history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum:.3f}")
            if on_step is not None:
                on_step(step + 1)
            if cfg.early_stop and probe_check is not None and (step + 1) % cfg.early_stop_every == 0:
                accuracy = forget_accuracy(model, probe_check, accelerator)
                record["forget_probe_accuracy"] = accuracy
                if accuracy <= cfg.early_stop_accuracy:
                    result.stopped_early = True
                    break
        if hooks.after_training:
            state = LoopState(model, method, data, cfg, pad_id, reference, probe_check, accelerator, params, snapshot,
                              lr, bar, result)
            for stage in hooks.after_training:
                stage(state)
    finally:
        bar.close()
        model.eval()
        result.seconds = time.perf_counter() - start
    return result


OPTIMIZERS = ("adamw", "sgd", "sign", *ZEROTH_ORDER)


class SignMomentum(torch.optim.Optimizer):
    """Sign-based updates with momentum (signum): m <- beta m + (1 - beta) g;  theta <- theta - lr sign(m)
    (decoupled weight decay theta <- theta (1 - lr wd) first). Bernstein et al. 2018, "signSGD: Compressed
    Optimisation for Non-Convex Problems" (arXiv 1802.04434), Alg. 3; for unlearning, gradient-sign updates
    land in basins that relearning and quantization disturb less (Lang et al. 2025, "Downgrade to Upgrade",
    arXiv 2510.00761)."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                m = state["momentum"]
                m.mul_(group["momentum"]).add_(p.grad, alpha=1 - group["momentum"])
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.sign(m), alpha=-group["lr"])
        return loss


def is_zo_step(cfg: TrainConfig, step: int) -> bool:
    """`zo`: every step is zeroth-order; `hybrid`: every `zo_every`-th step (the others first-order AdamW)."""
    return cfg.optimizer == "zo" or (cfg.optimizer == "hybrid" and step % cfg.zo_every == cfg.zo_every - 1)


@torch.no_grad()
def zo_estimate(params: list[torch.nn.Parameter], loss_fn: Callable[[], float], mu: float, queries: int,
                generator: torch.Generator) -> tuple[float, list[torch.Tensor]]:
    """Two-point SPSA gradient estimate: g = 1/q Σ_i (L(θ + μ u_i) − L(θ − μ u_i)) / (2μ) · u_i, u_i ~ N(0, I).
    Returns the mean of the losses seen and g. θ is restored exactly (from a copy) after each query."""
    saved = [p.detach().clone() for p in params]
    estimate = [torch.zeros_like(p) for p in params]
    losses = []
    try:
        for _ in range(queries):
            directions = [torch.randn(p.shape, generator=generator).to(p) for p in params]
            for p, u in zip(params, directions, strict=True):
                p.add_(u, alpha=mu)
            plus = loss_fn()
            for p, u in zip(params, directions, strict=True):
                p.add_(u, alpha=-2 * mu)
            minus = loss_fn()
            for p, original in zip(params, saved, strict=True):
                p.copy_(original)
            coefficient = (plus - minus) / (2 * mu * queries)
            for g, u in zip(estimate, directions, strict=True):
                g.add_(u, alpha=coefficient)
            losses += [plus, minus]
    finally:
        for p, original in zip(params, saved, strict=True):
            p.copy_(original)
    return sum(losses) / len(losses), estimate


def zeroth_order_update(params, estimate: list[torch.Tensor], rate: float, snapshot: list[torch.Tensor],
                        loss: float, step: int) -> float:
    """θ ← θ − rate · g (in place); restores and raises when the loss or the weights are not finite.
    Returns ‖g‖."""
    if not math.isfinite(loss):
        restore_params(params, snapshot)
        raise TrainingDiverged(f"loss became {loss} at step {step}; weights restored to the last good step. Lower "
                               "train.lr (zo) or train.zo_lr (hybrid)")
    save_params(params, snapshot)
    with torch.no_grad():
        for p, g in zip(params, estimate, strict=True):
            p.sub_(rate * g)
    if not all(torch.isfinite(p).all() for p in params):
        restore_params(params, snapshot)
        raise TrainingDiverged(f"a zeroth-order step made the weights non-finite at step {step}; weights restored")
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in estimate)))


def make_optimizer(name: str, params: list, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; plain SGD, whose update is proportional to each parameter's gradient (Adam's first steps
    move every trainable parameter by about `lr` whatever its gradient, which reaches far beyond the data);
    or `sign`, sign-based updates with momentum (SignMomentum)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "sign":
        return SignMomentum(params, lr=lr, weight_decay=weight_decay)
    if name == "zo":  # never stepped: every step is applied by zeroth_order_update
        return torch.optim.SGD(params, lr=lr)
    if name == "hybrid":  # first-order steps with AdamW, every zo_every-th step zeroth-order
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"train.optimizer '{name}' is unknown; use one of: {', '.join(OPTIMIZERS)}")


def answer_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Scored (answer) tokens in a collated batch."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def mark_token_shares(draws: list[tuple[StepBatch, dict | None]]) -> None:
    """Give every micro-batch of a step its `token_share`: its answer tokens × micro-batches / the step's answer
    tokens, per slot (forget, retain, forget_alt, anchor). A token mean scaled by it (`token_share` in
    methods/common.py), averaged over the micro-batches, is the token mean over the whole step, so gradient
    accumulation gives the large batch's update even when answers differ in length. Exact for the token means
    over all answer tokens (NLL, KL, JSD, the weighted ascents); ce_u, which skips each answer's first token, is
    weighted by all answer tokens, so nearly; rmu's means over hidden states are not weighted. Sequence means
    (NPO, SimNPO, DPO) need no weight: every micro-batch holds the same number of sequences."""
    slots = [[b.forget for b, _ in draws], [b.retain for b, _ in draws], [b.forget_alt for b, _ in draws],
             [a for _, a in draws]]
    for batches in slots:
        if any(b is None for b in batches):
            continue
        counts = [answer_tokens(b) for b in batches]
        total = sum(counts)
        for b, n in zip(batches, counts, strict=True):
            b["token_share"] = torch.tensor(n * len(batches) / total if total else 1.0)


def _check_data_parallel(cfg: TrainConfig, method, world: int) -> None:
    """What data-parallel training (several processes, `accelerate launch`) needs: every batch splits evenly
    over the processes, and the updates go through the optimizer (the gradients are what the processes share)."""
    sizes = {"batch_size": cfg.batch_size, "retain_batch_size": cfg.retain_batch_size or cfg.batch_size,
             "anchor_batch_size": cfg.anchor_batch_size or cfg.batch_size}
    uneven = [f"train.{k}={v}" for k, v in sizes.items() if v % world]
    if uneven:
        raise ConfigError(f"{', '.join(uneven)} do not split over {world} processes: use multiples of {world}")
    if cfg.optimizer in ZEROTH_ORDER:
        raise ConfigError(f"train.optimizer={cfg.optimizer} runs on one process only; use adamw, sgd or sign")
    if getattr(method, "update", None) is not None:
        raise ConfigError(f"method '{getattr(method, 'registered_name', type(method).__name__)}' makes its own "
                          "updates and runs on one process only")


def split_batch(batch: dict[str, torch.Tensor] | None, parts: int) -> list[dict[str, torch.Tensor] | None]:
    """A collated batch cut into `parts` equal runs of rows (the batch size is a multiple of `parts`)."""
    if batch is None:
        return [None] * parts
    pieces = {k: v.chunk(parts, dim=0) for k, v in batch.items()}
    return [{k: chunks[i] for k, chunks in pieces.items()} for i in range(parts)]


def split_draw(draw: tuple[StepBatch, dict | None], parts: int) -> list[tuple[StepBatch, dict | None]]:
    """One micro-batch (and its anchor batch) as `parts` micro-batches, one per process."""
    batch, anchor = draw
    forget, retain, alt = (split_batch(b, parts) for b in (batch.forget, batch.retain, batch.forget_alt))
    return [(StepBatch(forget=forget[i], retain=retain[i], forget_alt=alt[i]), a)
            for i, a in enumerate(split_batch(anchor, parts))]


def all_finite(loss: torch.Tensor, accelerator) -> bool:
    """Whether the loss is finite on every process (all of them stop together, none waits for the others)."""
    finite = bool(torch.isfinite(loss))
    if accelerator.num_processes == 1:
        return finite
    flags = accelerator.reduce(torch.tensor(0.0 if finite else 1.0, device=accelerator.device), "sum")
    return float(flags) == 0.0


def process_means(accelerator, loss: float, logs: dict[str, float]) -> tuple[float, dict[str, float]]:
    """The loss and logged values averaged over the processes (every process gets the same numbers)."""
    keys = sorted(logs)
    values = torch.tensor([loss] + [logs[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    means = accelerator.reduce(values, "mean").tolist()
    return means[0], dict(zip(keys, means[1:], strict=True))


def sample_batch(examples: Sequence[Example], size: int, generator, pad_id: int) -> dict[str, torch.Tensor]:
    """`size` examples drawn uniformly with replacement, collated."""
    picks = torch.randint(len(examples), (size,), generator=generator).tolist()
    return collate([examples[i] for i in picks], pad_id)


def anchor_term(model, anchor: dict[str, torch.Tensor], reference) -> torch.Tensor:
    """Mean KL(p_ref || p_model) over the anchor batch's answer tokens: how far the model's next-token
    distributions on general data have moved from the model before unlearning (the KL retain term of
    Maini et al. 2024, TOFU, held on data of the operator's choosing rather than the retain set)."""
    return retain_term("kl", model, anchor, reference)


def anchored(out: LossOutput, anchor: torch.Tensor, weight: float) -> LossOutput:
    """The method's loss plus weight x the anchor term, with the term logged."""
    return LossOutput(out.loss + weight * anchor, {**out.logs, "anchor": anchor.item()})


def _step_batch(data: TrainingData, indices: list[int], retain_size: int, generator, pad_id: int,
                retain_sampler: RetainSampler | None = None) -> StepBatch:
    forget = collate([data.forget[i] for i in indices], pad_id)
    alt = collate([data.forget_alt[i] for i in indices], pad_id) if data.forget_alt else None
    retain = None
    if data.retain:
        picks = (retain_sampler or UniformRetain(len(data.retain))).picks(retain_size, indices, generator)
        retain = collate([data.retain[i] for i in picks], pad_id)
    return StepBatch(forget=forget, retain=retain, forget_alt=alt)
