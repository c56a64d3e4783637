"""Forward passes that project onto the vocabulary only the positions a loss or metric reads.

The output layer and the softmax over the vocabulary are a large share of a small model's cost (for the
135M default model, a 49,152-token vocabulary: more than a quarter of a training step), and the prompt
positions are never scored. `scored_logits` asks the model for the logits from the position before the
batch's first answer token onwards (`logits_to_keep`, which Hugging Face causal LMs accept) and cuts the
labels the same way, so every log-prob helper works on the pair unchanged and gives the same values.
"""

from __future__ import annotations

import inspect
from functools import lru_cache

import torch

from .logprobs import IGNORE


def first_scored_position(labels: torch.Tensor) -> int:
    """The earliest position whose logits are read: the one before the first counted label of any row
    (logits at t predict the token at t+1). 0 when nothing before it can be skipped."""
    counted = (labels != IGNORE).any(dim=0).nonzero()
    if len(counted) == 0:
        return max(labels.shape[1] - 1, 0)
    return max(int(counted[0]) - 1, 0)


@lru_cache(maxsize=64)
def _class_accepts_logits_to_keep(cls: type) -> bool:
    return "logits_to_keep" in inspect.signature(cls.forward).parameters


def accepts_logits_to_keep(model) -> bool:
    """Whether the causal LM under any wrapper (DistributedDataParallel, PEFT) takes `logits_to_keep`."""
    inner = getattr(model, "module", model)
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return _class_accepts_logits_to_keep(type(inner))


def scored_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of `batch` from `first_scored_position` on; labels are not passed to the model, so
    no library loss is computed. Models without `logits_to_keep` compute every position and are cut after."""
    labels = batch["labels"]
    start = first_scored_position(labels)
    keep = labels.shape[1] - start
    extra = {"logits_to_keep": keep} if start > 0 and accepts_logits_to_keep(model) else {}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra).logits
    return logits[:, -keep:], labels[:, start:]
