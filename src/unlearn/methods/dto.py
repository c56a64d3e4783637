"""DTO (direct token optimization): gradient ascent on the answer's target tokens, KL to the starting model on the rest.

Target tokens are found on the starting model, once per forget example, by a delta-score: the answer's counted
tokens are split into a prefix and a suffix (its last `suffix_ratio`); each prefix token j is blanked (its input
embedding set to zero) and

    delta_j = NLL(suffix | token j blanked) - NLL(suffix),     NLL = mean over the suffix tokens,

how much the rest of the answer depends on token j. The `target_ratio` of prefix tokens with the highest delta
are the targets T (at least one); every other answer token is a non-target N. Then

    L = w_f * mean_{t in T} log p_t  +  w_kl * mean_{t in N} KL(p_ref(. | y_<t) || p_theta(. | y_<t))  [+ w_r * R]

With `selection: labels` the counted answer tokens are the targets as given (the request's `focus` spans) and the
answer tokens between and after them are the non-targets, so `focus` is optional: without it DTO picks the tokens.
Source: Lee, Liu, Xiong 2025, "Direct Token Optimization: A Self-contained Approach to Large Language Model
Unlearning" (arXiv 2510.00125). A reconstruction from the paper's abstract and its public ICLR 2026 reviews, not
from its equations: the delta-score, the split and the loss follow them (targets by how perturbing a prefix
token changes the suffix's loss, top k%, gradient ascent on them, KL to the original model on the others, no
retain data); the blanking perturbation and the defaults are this project's choices (docs/paper_index.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.logprobs import IGNORE, token_logprobs
from ..models.scoring import accepts_logits_to_keep
from .base import METHODS, LossMethod, LossOutput, OptionalRetain, StepBatch
from .common import (
    kl_on_answers,
    logits_of,
    reference_logits,
    token_share,
    weighted_token_ascent,
    with_optional_retain,
)

SELECTIONS = ("auto", "labels")


def split_prefix_suffix(positions: list[int], suffix_ratio: float) -> tuple[list[int], list[int]]:
    """The answer's counted positions as (prefix, suffix): the suffix is the last round(ratio * n) of them, at
    least one, leaving the prefix at least one (a one-token answer is all prefix)."""
    n = len(positions)
    if n <= 1:
        return list(positions), []
    n_suffix = min(max(1, round(suffix_ratio * n)), n - 1)
    return list(positions[: n - n_suffix]), list(positions[n - n_suffix:])


def top_targets(positions: list[int], deltas: list[float], target_ratio: float) -> list[int]:
    """The ceil(ratio * len) positions with the highest delta-scores (at least one; the earlier wins a tie)."""
    if not positions:
        return []
    k = max(1, math.ceil(target_ratio * len(positions)))
    ranked = sorted(range(len(positions)), key=lambda i: (-deltas[i], i))
    return sorted(positions[i] for i in ranked[:k])


@torch.no_grad()
def suffix_nll_with_blanks(model, input_ids: torch.Tensor, suffix: list[int], blanks: list[int],
                           rows_per_pass: int = 32) -> torch.Tensor:
    """Mean NLL of the tokens at `suffix` positions of one unpadded row (1-D ids): first as it is, then with the
    input embedding at each of `blanks` set to zero (one row each), `rows_per_pass` rows per forward pass (a long
    answer has many). Shape (1 + len(blanks),)."""
    model = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    embed = model.get_input_embeddings()(input_ids.unsqueeze(0))
    first = suffix[0] - 1  # the logits before it are not read
    keep = embed.shape[1] - first
    extra = {"logits_to_keep": keep} if first > 0 and accepts_logits_to_keep(model) else {}
    picks = [s - 1 - first for s in suffix]
    variants: list[int | None] = [None, *blanks]
    values = []
    for chunk in range(0, len(variants), rows_per_pass):
        part = variants[chunk: chunk + rows_per_pass]
        rows = embed.repeat(len(part), 1, 1)
        for row, position in enumerate(part):
            if position is not None:
                rows[row, position] = 0.0
        logp = torch.log_softmax(model(inputs_embeds=rows, **extra).logits[:, -keep:][:, picks].float(), dim=-1)
        targets = input_ids[suffix].expand(len(part), -1).unsqueeze(-1)
        values.append(-logp.gather(-1, targets).squeeze(-1).mean(dim=1))
    return torch.cat(values)


def answer_region(labels: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Positions from each row's first counted label to its last attended token: the answer (with `focus`
    labels, its tokens between and after the spans too)."""
    counted = labels != IGNORE
    started = counted.long().cumsum(dim=1) > 0
    return started & attention.bool()


@METHODS.register("dto")
@dataclass
class DTO(OptionalRetain, LossMethod):
    target_ratio: float = 0.3
    suffix_ratio: float = 0.5
    selection: str = "auto"  # auto: delta-scores on the starting model | labels: the counted tokens as given
    forget_weight: float = 1.0
    kl_weight: float = 1.0
    retain_weight: float = 0.0  # self-contained: no retain data by default
    retain_loss: str = "nll"  # nll | kl
    summary = ("gradient ascent on the answer tokens the rest depends on most (delta-score), KL to the start on the "
               "other answer tokens")
    benchmark_settings = {
        "demo": {"train.lr": 2e-5},
        "tofu": {"train.lr": 1e-5},
    }

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return True  # delta-scores and the KL term are the starting model's

    def validate(self) -> None:
        super().validate()
        if self.selection not in SELECTIONS:
            raise ConfigError(f"dto: selection '{self.selection}' is unknown; use one of {', '.join(SELECTIONS)}")
        if not 0 < self.target_ratio <= 1 or not 0 < self.suffix_ratio < 1:
            raise ConfigError("dto: target_ratio must be in (0, 1] and suffix_ratio in (0, 1)")
        if self.kl_weight < 0 or self.forget_weight < 0:
            raise ConfigError("dto: forget_weight and kl_weight must be >= 0")

    def setup(self, model, reference) -> None:  # a fresh cache of target positions for each training
        self._targets: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}

    def row_targets(self, reference, input_ids: torch.Tensor, labels: torch.Tensor) -> list[int]:
        """Target positions of one unpadded row (cached by its tokens and labels: each example is scored once)."""
        key = (tuple(input_ids.tolist()), tuple(labels.tolist()))
        cache = self._targets
        if key not in cache:
            positions = [i for i, label in enumerate(key[1]) if label != IGNORE]
            if self.selection == "labels":
                cache[key] = positions
            else:
                prefix, suffix = split_prefix_suffix(positions, self.suffix_ratio)
                deltas = [0.0] * len(prefix)
                if suffix:
                    with reference.active() as model:
                        nll = suffix_nll_with_blanks(model, input_ids, suffix, prefix)
                    deltas = (nll[1:] - nll[0]).tolist()
                cache[key] = top_targets(prefix, deltas, self.target_ratio)
        return cache[key]

    def target_mask(self, reference, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = torch.zeros_like(batch["labels"], dtype=torch.bool)
        for row in range(mask.shape[0]):
            kept = batch["attention_mask"][row].bool().nonzero().squeeze(-1)  # padding on either side left out
            targets = self.row_targets(reference, batch["input_ids"][row, kept], batch["labels"][row, kept])
            mask[row, kept[targets]] = True
        return mask

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        forget_batch = batch.forget
        targets = self.target_mask(reference, forget_batch)
        others = answer_region(forget_batch["labels"], forget_batch["attention_mask"]) & ~targets
        logits, labels = logits_of(model, forget_batch)
        start = forget_batch["labels"].shape[1] - labels.shape[1]
        logp, _ = token_logprobs(logits, labels)
        share = token_share(forget_batch)
        forget = weighted_token_ascent(logp, targets[:, start:][:, 1:], torch.ones_like(logp)) * share
        kl_value = torch.zeros((), device=logp.device)
        if self.kl_weight > 0 and bool(others.any()):
            ref_logits, _ = reference_logits(reference, forget_batch)
            kl_labels = forget_batch["input_ids"].masked_fill(~others, IGNORE)
            kl_value = kl_on_answers(logits, ref_logits, kl_labels[:, start:]) * share
        loss, retain_value = with_optional_retain(self.forget_weight * forget + self.kl_weight * kl_value, 1.0,
                                                  self.retain_weight, self.retain_loss, model, batch.retain, reference)
        return LossOutput(loss, {"dto": forget.item(), "kl": kl_value.item(), "retain": retain_value.item(),
                                 "targets": float(targets.sum())})
