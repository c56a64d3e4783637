"""AltPO: prefer an alternate, plausible answer that the model writes itself over the forget answer.

Before training, the model (as it is, the reference) is asked for another version of each forget answer with the
facts changed; one alternate ỹ per forget item is kept (the first sample that does not repeat the fact). Then

    L = −(2/β) · mean_i log σ(β · [(log π(ỹ_i|x_i) − log π_ref(ỹ_i|x_i)) − (log π(y_i|x_i) − log π_ref(y_i|x_i))])
        + w_r · R(retain)

Negative feedback on the forget answer y (as NPO/DPO) with in-domain positive feedback on ỹ: the model learns
to say something of the same kind instead of the fact, not to refuse or to babble.
An alternate "repeats the fact" when its normalised text contains one of the item's `focus` spans (or the whole
answer when the item has none); items without a usable alternate after `tries` samples fall back to a refusal
(counted in the log). The source averages over several alternates per item; one per item here (project choice).
Source: Mekala, Dorna, Dubey, Lalwani, Koleczek, Rungta, Hasan and Lobo 2025, "Alternate Preference Optimization
for Unlearning Factual Knowledge in Large Language Models" (COLING 2025, arXiv 2409.13474), Sec. 3; the prompt
follows the authors' released instruction; β = 0.1 and the 2/β scale as in their DPO-form loss.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import ConfigError
from ..metrics.text import normalize_answer
from .base import METHODS, LossMethod, LossOutput, RetainTerm, StepBatch
from .common import retain_term
from .idk_dpo import preference_over_forget

log = logging.getLogger(__name__)

ALTERNATE_INSTRUCTION = ("Now write another version of the answer with some alternate plausible facts that change "
                         "the answer's details.")


def alternate_prompt(question: str, answer: str) -> str:
    """The user turn that asks for an alternate answer."""
    return f"Question: {question}\nAnswer: {answer}\n{ALTERNATE_INSTRUCTION}"


def sample_alternates(model, tokenizer, items, tries: int, temperature: float, max_new_tokens: int, seed: int,
                      progress: str | None) -> list[list[str]]:
    """`tries` sampled alternate answers per QA item from `model` as it is (in eval mode for the sampling)."""
    from ..data.formatting import prompt_text
    from ..metrics.generation import sample_answers

    prompts = [prompt_text(tokenizer, alternate_prompt(qa.question, qa.answer)) for qa in items]
    was_training = model.training
    model.eval()
    try:
        return sample_answers(model, tokenizer, prompts, tries, temperature=temperature,
                              max_new_tokens=max_new_tokens, seed=seed, progress=progress)
    finally:
        model.train(was_training)


def repeats_fact(candidate: str, answer: str, focus: tuple[str, ...]) -> bool:
    """True when `candidate` is empty or its normalised text contains a focus span (the whole answer without one)."""
    text = normalize_answer(candidate)
    if not text:
        return True
    parts = [normalize_answer(p) for p in (focus or (answer,))]
    return any(p and p in text for p in parts)


def first_alternate(samples: list[str], answer: str, focus: tuple[str, ...]) -> str | None:
    """The first sample that does not repeat the fact, or None."""
    return next((s for s in samples if not repeats_fact(s, answer, focus)), None)


@METHODS.register("altpo")
@dataclass
class AltPO(RetainTerm, LossMethod):
    beta: float = 0.1
    retain_weight: float = 1.0
    retain_loss: str = "nll"  # nll | kl
    tries: int = 4  # samples drawn per forget item to find an alternate
    temperature: float = 1.0
    max_new_tokens: int = 48
    seed: int = 0
    summary = "DPO preferring the model's own alternate (changed-fact) answer over the forget answer"
    benchmark_settings = {
        "demo": {"train.lr": 2e-5, "method.retain_weight": 20.0},  # idk_dpo's demo settings, not tuned
        "tofu": {"train.lr": 1e-5},
    }
    needs_reference = True
    needs_alternate_answers = True

    def validate(self) -> None:
        super().validate()
        if self.beta <= 0 or self.tries < 1 or self.temperature <= 0 or self.max_new_tokens < 1:
            raise ConfigError("altpo: beta > 0, tries >= 1, temperature > 0 and max_new_tokens >= 1 are required")

    def before_training(self, model, tokenizer, request, train_cfg, progress: bool = True) -> None:
        """Sample the alternates from the model before it changes."""
        from ..data.refusals import refusal_for

        if request.forget.texts:
            raise ConfigError("altpo needs QA forget data (it writes an alternate answer per question)")
        items = request.forget.qa
        samples = sample_alternates(model, tokenizer, items, self.tries, self.temperature, self.max_new_tokens,
                                    self.seed, "altpo: writing alternate answers" if progress else None)
        chosen = [first_alternate(s, qa.answer, qa.focus) for s, qa in zip(samples, items, strict=True)]
        missing = sum(c is None for c in chosen)
        if missing:
            log.warning("altpo: %d of %d forget items got no alternate that changes the fact; they prefer a refusal",
                        missing, len(items))
        self.alternates = [c if c is not None else refusal_for(i) for i, c in enumerate(chosen)]

    def alternate_answer(self, index: int, qa) -> str:
        """The preferred answer of forget item `index` (used by build_training_data)."""
        alternates = getattr(self, "alternates", None)
        if alternates is None:
            raise ConfigError("altpo: the alternates were not written (before_training was not called)")
        return alternates[index]

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        forget = preference_over_forget(model, batch, reference, self.beta)
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        return LossOutput(forget + self.retain_weight * retain_value,
                          {"altpo": forget.item(), "retain": retain_value.item()})


__all__ = ["AltPO", "alternate_prompt", "first_alternate", "repeats_fact", "sample_alternates"]
