"""Pieces shared by loss methods: forward passes, sequence log-probs and the retain terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.logprobs import IGNORE, nll, sequence_logprob
from ..models.scoring import scored_logits

RETAIN_LOSSES = ("nll", "kl")


def token_share(batch: dict[str, torch.Tensor] | None):
    """The weight of a token mean over this micro-batch within its step (set by the training loop under
    gradient accumulation, `mark_token_shares`; 1 otherwise): token mean × share, averaged over the step's
    micro-batches, is the token mean over the step's tokens."""
    return 1.0 if batch is None else batch.get("token_share", 1.0)


def logits_of(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of `model` on a batch, from the position before the first answer token on
    (`scored_logits`): every loss below reads only those positions."""
    return scored_logits(model, batch)


@torch.no_grad()
def reference_logits(reference, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The same for the frozen reference model."""
    with reference.active() as model:
        return scored_logits(model, batch)


def seq_logprob(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """log pi(y|x) summed over answer tokens, per sequence."""
    return sequence_logprob(*logits_of(model, batch))


def kl_on_answers(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer positions of KL(p_ref || p_model) of the next-token distributions."""
    mask = labels[:, 1:] != IGNORE
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    logq = F.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    q = logq.exp()
    kl = (torch.special.xlogy(q, q) - torch.where(q > 0, q * logp, torch.zeros_like(q))).sum(-1)
    return torch.where(mask, kl, torch.zeros_like(kl)).sum() / mask.sum().clamp(min=1)


def weighted_token_ascent(logp: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over counted tokens of weight_t * log p_t, the weight held fixed (no gradient through it): minimising
    it lowers each token's log-prob in proportion to its weight (weight 1: gradient ascent)."""
    weighted = weight.detach() * logp
    return torch.where(mask, weighted, torch.zeros_like(weighted)).sum() / mask.sum().clamp(min=1)


def check_retain_loss(kind: str) -> None:
    if kind not in RETAIN_LOSSES:
        raise ConfigError(f"retain_loss '{kind}' is unknown; use one of {', '.join(RETAIN_LOSSES)}")


def retain_term(kind: str, model, retain: dict[str, torch.Tensor] | None, reference) -> torch.Tensor:
    """NLL of the retain batch, or KL from the reference on it. Zero when there is no retain data."""
    if retain is None:
        return torch.zeros((), device=next(model.parameters()).device)
    if kind == "kl":
        ref, _ = reference_logits(reference, retain)
        logits, labels = logits_of(model, retain)
        return kl_on_answers(logits, ref, labels) * token_share(retain)
    return nll(*logits_of(model, retain)) * token_share(retain)


def trainable_snapshot(model) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """(parameter, a copy of its value) for every trainable parameter: the starting point of weight-space methods."""
    return [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]


def retrain_from_start(model, start: list[tuple[torch.nn.Parameter, torch.Tensor]], method, tokenizer, request,
                       train_cfg, progress: bool, description: str) -> tuple[list[torch.Tensor], object]:
    """Train a copy of `model` with its trainable parameters reset to `start`, with `method` and the run's
    training settings (no early stop: no probes are checked); return the copy's trained values of those
    parameters in `start`'s order, and the TrainResult. `model` itself is not changed."""
    import copy
    import dataclasses

    from ..models.reference import Reference
    from ..train.loop import train
    from ..unlearner import build_training_data

    names = {id(p): n for n, p in model.named_parameters()}
    twin = copy.deepcopy(model)
    twin_params = dict(twin.named_parameters())
    with torch.no_grad():
        for p, value in start:
            twin_params[names[id(p)]].copy_(value)
    data = build_training_data(tokenizer, request, method, train_cfg.max_length)
    cfg = dataclasses.replace(train_cfg, early_stop=False, repair_steps=0)
    reference = Reference(twin) if method.needs_reference or data.uses_anchor(cfg) else None
    result = train(twin, method, data, cfg, tokenizer.pad_token_id, reference=reference, progress=progress,
                   description=description)
    return [twin_params[names[id(p)]].detach() for p, _ in start], result
