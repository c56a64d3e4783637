"""A frozen reference model that costs no second full copy.

With LoRA the reference is the base model with adapters disabled. Otherwise only the trainable
parameters are copied, and a reference forward pass swaps the original values in and back out.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .params import is_peft_model


class Reference:
    """The model as it was when the Reference was created; use `forward(**batch)`."""

    def __init__(self, model) -> None:
        self.model = model
        self.lora = is_peft_model(model)
        self._originals: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
        if not self.lora:
            self._originals = [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]

    @contextmanager
    def active(self):
        """Inside this context `self.model` computes as the reference."""
        if self.lora:
            with self.model.disable_adapter():
                yield self.model
            return
        self._follow_device()
        current = [p.data for p, _ in self._originals]
        try:
            for p, original in self._originals:
                p.data = original
            yield self.model
        finally:
            for (p, _), data in zip(self._originals, current, strict=True):
                p.data = data

    def _follow_device(self) -> None:
        """Keep the saved values on the parameters' device and dtype (the training loop moves the model to the
        accelerator after the values were saved)."""
        if any((o.device, o.dtype) != (p.device, p.dtype) for p, o in self._originals):
            self._originals = [(p, original.to(p)) for p, original in self._originals]

    @torch.no_grad()
    def forward(self, **batch):
        with self.active() as model:
            return model(**batch)

    def state_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for _, t in self._originals)
