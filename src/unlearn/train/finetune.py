"""Plain fine-tuning through the same loop: used to teach a model data (demo, benchmark `prepare`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..methods.base import LossMethod, LossOutput, StepBatch
from ..methods.common import answer_nll, check_retain_loss, retain_term


@dataclass
class FineTune(LossMethod):
    """L = NLL(batch.forget) + w_r * R(batch.retain).

    Here `forget` is the data to learn and `retain` the replay; R is NLL, or KL from the starting model
    (`replay_loss='kl'`, which keeps its whole next-token distribution on the replay data, not one sample).
    """

    retain_weight: float = 1.0
    replay_loss: str = "nll"

    def validate(self) -> None:
        check_retain_loss(self.replay_loss)

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.replay_loss == "kl" and self.retain_weight > 0

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        learn = answer_nll(model, batch.forget)
        loss = learn
        logs = {"nll": learn.item()}
        if batch.retain is not None and self.retain_weight > 0:
            replay = retain_term(self.replay_loss, model, batch.retain, reference)
            loss = loss + self.retain_weight * replay
            logs["replay"] = replay.item()
        return LossOutput(loss, logs)
