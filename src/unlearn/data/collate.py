"""Pad examples into a batch of tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.logprobs import IGNORE
from .formatting import Example


def collate(examples: Sequence[Example], pad_id: int, side: str = "right") -> dict[str, torch.Tensor]:
    """Pad to the longest example: input_ids with `pad_id`, labels with -100, attention_mask 0."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        cols = slice(0, n) if side == "right" else slice(width - n, width)
        ids[row, cols] = torch.tensor(e.input_ids)
        labels[row, cols] = torch.tensor(e.labels)
        mask[row, cols] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def to_device(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    """The same batch with every tensor on `device`."""
    return {k: v.to(device) for k, v in batch.items()}
