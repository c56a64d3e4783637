"""LUNAR: move the forget prompts' activations at one layer to where the model keeps prompts it declines.

With the frozen model's outputs h_ref^l of decoder layer l, measured at each prompt's last token:

    r   = mean_{x ∈ declined prompts} h_ref^l(x) − mean_{x ∈ forget prompts} h_ref^l(x)
    L   = mean_{t ∈ forget prompt tokens} ‖h^l(x_f)_t − (h_ref^l(x_f)_t + c · r)‖² / d
        + mean_{t ∈ retain tokens}        ‖h^l(x_r)_t − h_ref^l(x_r)_t‖² / d

Only the MLP output projection of layer l is trained, so h^l − h_ref^l is the change of that projection's output:
the forget prompts' MLP output is shifted by c · r, the retain data's is kept. Declined prompts: a built-in list
of requests an instruction-tuned model refuses (`unlearn.data.refusals.DECLINED_PROMPTS`), or, with
`direction: random`, a random unit direction of the same length as r (the paper reports that a contrastive
direction is not required). Forget rows without prompt tokens (plain texts) use all their tokens.
Retaining on every retain token (prompt and answer) rather than on prompts alone is a project choice.
Source: Shen, Qiu, Kurmanji, Iacob, Sani, Chen, Cancedda and Lane 2025, "LUNAR: LLM Unlearning via Neural
Activation Redirection" (arXiv 2502.07218), Sec. 3 (redirection by c · r on one down-projection); c = 2 as in
OpenUnlearning's LUNAR trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TrainableConfig
from ..data.collate import collate, to_device
from ..errors import ConfigError
from ..models.logprobs import IGNORE
from .base import METHODS, LossMethod, LossOutput, StepBatch
from .common import after_common_prefix, first_answer_position, hidden_at, masked_mse

DIRECTIONS = ("declined", "random")


def redirection(declined_last: torch.Tensor, forget_last: torch.Tensor) -> torch.Tensor:
    """r = mean of the declined prompts' last-token activations − mean of the forget prompts' ((N, d) each)."""
    return declined_last.float().mean(dim=0) - forget_last.float().mean(dim=0)


def redirected_targets(h_ref: torch.Tensor, direction: torch.Tensor, coeff: float) -> torch.Tensor:
    """h_ref + c · r at every token."""
    return h_ref + coeff * direction


def prompt_mask(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Prompt tokens after the prefix every row shares (the chat template's); all tokens of rows that have no
    prompt (plain texts, every token labelled)."""
    tokens = after_common_prefix(batch["input_ids"], batch["attention_mask"])
    prompt = tokens & (batch["labels"] == IGNORE)
    no_prompt = ~prompt.any(dim=1, keepdim=True)
    return torch.where(no_prompt, tokens, prompt)


def last_prompt_token(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per row, the position of the last prompt token (the last real token of a row without an answer)."""
    first_answer = first_answer_position(batch["labels"])
    length = batch["attention_mask"].sum(dim=1)
    has_prompt = (first_answer > 0) & (first_answer < length)
    return torch.where(has_prompt, first_answer - 1, length - 1)


@METHODS.register("lunar")
@dataclass
class Lunar(LossMethod):
    layer: int = 7
    coeff: float = 2.0
    retain_weight: float = 1.0
    direction: str = "declined"  # declined | random (see the module)
    seed: int = 0
    summary = "shift the forget prompts' MLP output at one layer toward declined requests' activations"
    benchmark_settings = {
        "demo": {"train.lr": 1e-3},  # the source's rate for its one-matrix fit; not tuned here
        "tofu": {"train.lr": 1e-3},
    }
    needs_reference = True
    needs_retain = True
    default_lr = 1e-3

    def validate(self) -> None:
        if self.layer < 0:
            raise ConfigError("lunar.layer must be >= 0")
        if self.coeff <= 0 or self.retain_weight < 0:
            raise ConfigError("lunar: coeff must be > 0 and retain_weight >= 0")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"lunar.direction '{self.direction}' is unknown; use one of {', '.join(DIRECTIONS)}")

    def trainable_override(self, n_layers: int) -> TrainableConfig | None:
        if self.layer >= n_layers:
            raise ConfigError(f"lunar.layer={self.layer} but the model has {n_layers} layers")
        return TrainableConfig(mode="pattern", pattern=rf"layers\.{self.layer}\.mlp\.down_proj\.weight$")

    def before_training(self, model, tokenizer, request, train_cfg, progress: bool = True) -> None:
        """Measure r on the model as it is before training (the reference)."""
        from ..data.formatting import encode_qa
        from ..data.refusals import DECLINED_PROMPTS, refusal_for
        from ..unlearner import encode_spec

        forget = encode_spec(tokenizer, request.forget, train_cfg.max_length)
        declined = [encode_qa(tokenizer, q, refusal_for(i), train_cfg.max_length)
                    for i, q in enumerate(DECLINED_PROMPTS)]
        pad = tokenizer.pad_token_id
        r = redirection(self._last_activations(model, declined, pad), self._last_activations(model, forget, pad))
        if self.direction == "random":
            generator = torch.Generator().manual_seed(self.seed)
            u = torch.randn(r.shape, generator=generator)
            r = u / u.norm() * r.norm()
        self._direction = r

    @torch.no_grad()
    def _last_activations(self, model, examples, pad_id: int, batch_size: int = 8) -> torch.Tensor:
        """Layer `layer`'s output at each example's last prompt token, (N, d) on the CPU."""
        device = next(model.parameters()).device
        rows = []
        for i in range(0, len(examples), batch_size):
            batch = to_device(collate(examples[i:i + batch_size], pad_id), device)
            h = hidden_at(model, batch, self.layer)
            rows.append(h[torch.arange(h.shape[0], device=device), last_prompt_token(batch)].float().cpu())
        return torch.cat(rows)

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if getattr(self, "_direction", None) is None:
            raise ConfigError("lunar: the redirection was not measured (before_training was not called)")
        mask = prompt_mask(batch.forget)
        with reference.active() as ref_model, torch.no_grad():
            h_ref_forget = hidden_at(ref_model, batch.forget, self.layer)
            h_ref_retain = hidden_at(ref_model, batch.retain, self.layer) if batch.retain is not None else None
        h_forget = hidden_at(model, batch.forget, self.layer)
        forget = masked_mse(h_forget, redirected_targets(h_ref_forget, self._direction.to(h_forget), self.coeff), mask)
        retain = torch.zeros((), device=h_forget.device)
        if h_ref_retain is not None:
            retain = masked_mse(hidden_at(model, batch.retain, self.layer), h_ref_retain, batch.retain["attention_mask"])
        return LossOutput(forget + self.retain_weight * retain, {"lunar_forget": forget.item(),
                                                                   "lunar_retain": retain.item()})


__all__ = ["Lunar", "last_prompt_token", "prompt_mask", "redirected_targets", "redirection"]
