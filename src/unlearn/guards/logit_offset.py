"""Logit offset: a small model's unlearning, transferred to the protected model at decoding time.

With a small model before (M_o) and after (M_u) unlearning with any loss method, sharing the protected
model's tokenizer, every next-token logit of the protected model M becomes

    l'(x) = l_M(x) + alpha * (l_{M_u}(x) - l_{M_o}(x))

at every answer position (or, with `gate`, only for prompts the classifier relates to a stored request).
The protected model's weights are never needed for anything but the forward pass, so this works for
models too big to fine-tune.

Huang et al. 2024, "Offset Unlearning for Large Language Models" (delta-unlearning, arXiv 2404.11045):
the offset of a small unlearned/original pair added to a black-box model's logits, alpha = 1 by default;
the same arithmetic as proxy-tuning (Liu et al. 2024, arXiv 2401.08565). The small pair is given as two
model directories (`unlearn run` makes M_u); adding a request does not retrain it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .base import GUARDS, Decoder, Guard, GuardError, PromptView


def offset_logits(big: torch.Tensor, unlearned: torch.Tensor, original: torch.Tensor, alpha: float) -> torch.Tensor:
    """big + alpha * (unlearned - original) over the shared vocabulary (the big model's extra ids unchanged)."""
    size = min(big.shape[-1], unlearned.shape[-1], original.shape[-1])
    out = big.clone()
    out[..., :size] += alpha * (unlearned[..., :size] - original[..., :size]).to(big.dtype)
    return out


class SmallPairOffset(Decoder):
    """Runs both small models beside the protected one, with a key/value cache during generation."""

    def __init__(self, original, unlearned, alpha: float, active: list[bool]):
        self.models = (original, unlearned)
        self.alpha, self.active = alpha, active
        self._caches = None
        self._mask: torch.Tensor | None = None

    def begin(self, attention_mask: torch.Tensor) -> None:
        self._caches, self._mask = None, attention_mask

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, cached: bool):
        device = next(self.models[0].parameters()).device
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        if not cached:
            outs = [m(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                      use_cache=True) for m in self.models]
        else:
            outs = [m(input_ids=ids[:, -1:].to(device), attention_mask=mask.to(device),
                      position_ids=positions[:, -1:].to(device), past_key_values=c, use_cache=True)
                    for m, c in zip(self.models, self._caches, strict=True)]
        self._caches = [o.past_key_values for o in outs]
        return outs[0].logits[:, -1], outs[1].logits[:, -1]

    @torch.no_grad()
    def step(self, input_ids, scores, owners):
        if self._mask is None or self._mask.shape[0] != input_ids.shape[0]:
            self._mask, self._caches = torch.ones_like(input_ids), None
        if self._mask.shape[1] < input_ids.shape[1]:
            grow = input_ids.shape[1] - self._mask.shape[1]
            self._mask = torch.cat([self._mask, torch.ones(len(input_ids), grow, dtype=self._mask.dtype)], dim=1)
        original, unlearned = self._forward(input_ids, self._mask, cached=self._caches is not None)
        shifted = offset_logits(scores, unlearned.to(scores.device), original.to(scores.device), self.alpha)
        active = torch.tensor([self.active[o] for o in owners], device=scores.device).unsqueeze(-1)
        return torch.where(active, shifted, scores)

    @torch.no_grad()
    def teacher_forced(self, input_ids, attention_mask, logits, starts, first):
        device = next(self.models[0].parameters()).device
        small = [m(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits[:, first:]
                 for m in self.models]
        shifted = offset_logits(logits, small[1].to(logits.device), small[0].to(logits.device), self.alpha)
        active = torch.tensor(self.active, device=logits.device).view(-1, 1, 1)
        return torch.where(active, shifted, logits)


@GUARDS.register("logit_offset")
@dataclass
class LogitOffset(Guard):
    """Adds alpha * (small unlearned - small original) to the protected model's logits."""

    summary = "offset unlearning: a small unlearned/original pair shifts the big model's logits"

    small_original: str = ""  # model directory or hub id of the small model before unlearning
    small_unlearned: str = ""  # the same small model after unlearning (e.g. `unlearn run ... --out`)
    alpha: float = 1.0
    gate: bool = False  # True: only prompts the classifier relates to a stored request
    max_false_positive: float = 0.05

    def validate(self) -> None:
        if not self.small_original or not self.small_unlearned:
            raise ConfigError("logit_offset: set small_original and small_unlearned (model directories; make the "
                              "unlearned one with `unlearn run REQUEST --model SMALL --out DIR`)")

    def models(self, host):
        pair = self.__dict__.get("_pair")
        if pair is None:
            from ..models.loading import load_model

            pair = tuple(load_model(name)[0].eval() for name in (self.small_original, self.small_unlearned))
            device = next(host.model.parameters()).device
            pair = tuple(m.to(device) for m in pair)
            self.__dict__["_pair"] = pair
        return pair

    def use_models(self, original, unlearned) -> LogitOffset:
        """Use already loaded small models (checked against the protected model's vocabulary on `add`)."""
        self.__dict__["_pair"] = (original.eval(), unlearned.eval())
        return self

    def add(self, request, host) -> None:
        original, unlearned = self.models(host)
        sample = host.tokenizer("Where was the author born?", add_special_tokens=False)["input_ids"]
        vocab = min(m.get_input_embeddings().weight.shape[0] for m in (original, unlearned))
        if max(sample) >= vocab:
            raise GuardError("logit_offset: the small models' vocabulary does not cover the protected model's "
                             "tokenizer; the pair must share its tokenizer")

    def decoder(self, views: list[PromptView], host) -> Decoder | None:
        if not host.index.requests:
            return None
        original, unlearned = self.models(host)
        if self.gate:
            related = host.index.related([v.text for v in views], self.max_false_positive)
            active = [r is not None for r in related]
        else:
            active = [True] * len(views)
        return SmallPairOffset(original, unlearned, self.alpha, active)
