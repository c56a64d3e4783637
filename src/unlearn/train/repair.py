"""Repair after unlearning (`train.repair_steps`): retain/anchor-only steps that win back what the forget term
took from the data to keep, while the forget probes stay forgotten. Runs after the loop as a hook
(train/hooks.py), only when the loop stopped early (the forget probes were forgotten)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.collate import to_device
from ..errors import TrainingDiverged
from ..interrupt import raise_if_interrupted
from ..methods.common import retain_term
from .hooks import LoopState
from .loop import anchor_term, forget_accuracy, make_optimizer, restore_params, sample_batch, save_params


@dataclass(frozen=True)
class Repair:
    steps: int

    def __call__(self, state: LoopState) -> None:
        if state.result.stopped_early:
            state.result.repair_steps = repair(state, self.steps)


def repair(state: LoopState, steps: int) -> int:
    """Up to `steps` steps on the retain and anchor terms alone, after unlearning: they win back what
    the forget term took from the data to keep. The forget probes are checked every `early_stop_every` steps;
    once they are answered above `early_stop_accuracy` again, the weights go back to the last checked point.

        L_repair = w_r · retain_term(retain batch) + w_a · KL(p_before ‖ p_θ) on the anchor batch

    with the method's retain loss and weight (NLL, 1 for a method without them). A fresh optimizer: the
    unlearning steps' moments point along the forget gradient. The loop's snapshot buffer holds the last
    checked point. Returns the steps kept."""
    model, method, data, cfg, pad_id = state.model, state.method, state.data, state.cfg, state.pad_id
    reference, probe_check, accelerator = state.reference, state.probe_check, state.accelerator
    params, kept, lr, bar = state.params, state.snapshot, state.lr, state.bar
    optimizer = accelerator.prepare(make_optimizer(cfg.optimizer, params, lr, cfg.weight_decay))
    kind, weight = getattr(method, "retain_loss", "nll"), getattr(method, "retain_weight", 1.0)
    generator = torch.Generator().manual_seed(cfg.seed + 3)
    save_params(params, kept)
    kept_steps = 0
    model.train()
    for step in range(steps):
        raise_if_interrupted()
        loss = torch.zeros((), device=accelerator.device)
        if data.retain and weight > 0:
            retain = to_device(sample_batch(data.retain, cfg.retain_batch_size or cfg.batch_size, generator, pad_id),
                               accelerator.device)
            loss = loss + weight * retain_term(kind, model, retain, reference)
        if data.uses_anchor(cfg):
            anchor = to_device(sample_batch(data.anchor, cfg.anchor_batch_size or cfg.batch_size, generator, pad_id),
                               accelerator.device)
            loss = loss + cfg.anchor_weight * anchor_term(model, anchor, reference)
        if not torch.isfinite(loss):
            restore_params(params, kept)
            raise TrainingDiverged(f"repair loss became {loss.item()} at repair step {step}; weights restored to the "
                                   f"last checked point. Lower train.lr (now {lr})")
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if bar is not None:
            bar.set_postfix(repair=f"{step + 1}", loss=f"{loss.item():.3f}")
        if (step + 1) % cfg.early_stop_every == 0 or step + 1 == steps:
            if forget_accuracy(model, probe_check, accelerator) > cfg.early_stop_accuracy:
                restore_params(params, kept)
                break
            save_params(params, kept)
            kept_steps = step + 1
    model.eval()
    return kept_steps
