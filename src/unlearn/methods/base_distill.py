"""Base distillation: hold the forget answers to a teacher that never saw them, the retain answers to the model.

    L = w_f * mean_t KL( p_T(.|x, y_<t) || p_theta(.|x, y_<t) )       over the forget answers' tokens
      + w_r * R(retain)                                               (KL to the starting model, or NLL)

T is a model that was never taught the forget data: for data fine-tuned into a model, the checkpoint before
that fine-tuning (`teacher`). Where the fine-tuning alone taught a fact, T's next-token distributions on its
answer are those of a model that never learned it: the target is the retain model's behaviour there, not a
pushed-down likelihood. Gradient ascent, NPO and the refusal methods lower the true answer's likelihood or
raise another answer's, so the truth still stands out (first or last) among plausible alternatives; matching T
puts it where an untaught model ranks it.
Source: Chundawat, Tarun, Mandal and Kankanhalli 2023, "Can Bad Teaching Induce Forgetting? Unlearning in Deep
Networks Using an Incompetent Teacher" (AAAI), eq. (2): KL to an incompetent teacher on the forget data, KL to
the competent (starting) model on the retain data. Their incompetent teacher is a randomly initialised network;
for a language model that would teach noise, so the teacher here is the model before the data was taught
(a project choice). Weights w_f = w_r = 1 and the retain KL as in the paper; `teacher` has no default.
Applies to data fine-tuned into a model whose earlier checkpoint is kept; knowledge from pretraining has no
such teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..models.scoring import scored_logits
from .base import BASE_MODEL, METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import check_same_vocabulary, kl_on_answers, logits_of, retain_term, token_share


@METHODS.register("base_distill")
@dataclass
class BaseDistill(RetainTerm, LossMethod):
    teacher: str = ""  # a model that never saw the forget data: a packaged name, a local directory or a hub id
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    retain_loss: str = "kl"  # kl | nll
    summary = "distil a teacher that never saw the forget data on it (the checkpoint before fine-tuning)"
    benchmark_settings = {
        "demo": {"method.teacher": BASE_MODEL, "train.lr": 1e-4, "method.retain_weight": 20.0},
        "tofu": {"method.teacher": BASE_MODEL, "train.lr": 1e-5},
    }

    def __post_init__(self) -> None:
        self._teacher_model = None

    def validate(self) -> None:
        super().validate()
        if not self.teacher:
            raise ConfigError("base_distill needs method.teacher: a model that never saw the forget data "
                              "(for data fine-tuned into the model, the checkpoint before that fine-tuning)")

    def before_training(self, model, tokenizer, request, train_cfg, progress) -> None:
        from ..models.loading import load_model

        teacher, teacher_tokenizer = load_model(self.teacher)
        check_same_vocabulary(tokenizer, teacher_tokenizer, self.teacher)
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._teacher_model = teacher.eval()

    def release(self) -> None:
        """The teacher is needed for training only: its memory is given back when training ends."""
        self._teacher_model = None

    @torch.no_grad()
    def teacher_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self._teacher_model is None:
            raise RuntimeError("base_distill's teacher is loaded by before_training (the Unlearner calls it)")
        device = batch["input_ids"].device
        if next(self._teacher_model.parameters()).device != device:
            self._teacher_model.to(device)
        return scored_logits(self._teacher_model, batch)[0]

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        logits, labels = logits_of(model, batch.forget)
        forget = kl_on_answers(logits, self.teacher_logits(batch.forget), labels) * token_share(batch.forget)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        loss = self.forget_weight * forget + self.retain_weight * retain_value
        return LossOutput(loss, {"teacher_kl": forget.item(), "retain": retain_value.item()})
