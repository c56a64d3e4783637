"""Plain fine-tuning through the same loop: used to teach a model data (demo, benchmark `prepare`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..methods.base import LossMethod, LossOutput, StepBatch
from ..methods.common import logits_of
from ..models.logprobs import nll


@dataclass
class FineTune(LossMethod):
    """L = NLL(batch.forget) + w_r * NLL(batch.retain). Here `forget` is the data to learn, `retain` the replay."""

    retain_weight: float = 1.0

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        learn = nll(logits_of(model, batch.forget), batch.forget["labels"])
        loss = learn
        logs = {"nll": learn.item()}
        if batch.retain is not None and self.retain_weight > 0:
            replay = nll(logits_of(model, batch.retain), batch.retain["labels"])
            loss = loss + self.retain_weight * replay
            logs["replay_nll"] = replay.item()
        return LossOutput(loss, logs)
