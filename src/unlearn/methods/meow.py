"""MEOW: fine-tune on inverted facts, chosen by how strongly the model already memorises them (MEMO).

Before training, each forget answer y gets `candidates` inverted facts: answers to the same question with the facts
changed, written by the model itself (the AltPO instruction; samples that repeat the fact are dropped). Each
candidate ỹ is scored by MEMO in suffix mode, the model's memorisation of it:

    MEMO(x, ỹ) = (1/|K|) Σ_{k ∈ K} P_R1( ỹ[k:], gen(x, ỹ[:k]) ),   K = {1, 1+s, 1+2s, ...} ∩ [1, |ỹ|)

where ỹ[:k] is the first k characters, gen the model's greedy continuation of the answer started with them, P_R1
the ROUGE-1 precision of that continuation against the rest ỹ[k:] (stemmed), and s the character stride. The
`top_k` candidates with the largest (or smallest) MEMO are kept, and the model is fine-tuned on them:

    L = mean over (x, ỹ) kept of NLL(ỹ | x)  +  w_r · R(retain)

The forget answer itself bears no loss: the inverted facts overwrite it. With w_r > 0 this is the source's
"MEOW + GD" variant (0.9/0.1 there).
Source: Gu, Huang, Luo, Yao, Yang, Teng and Wang 2024, "MEOW: MEMOry Supervised LLM Unlearning Via Inverted Facts"
(arXiv 2409.11844), and the authors' released code for MEMO (ROUGE-1 precision over character windows of stride 5,
greedy generation) and its defaults (4 inverted facts per item, top 3 kept, lr 1e-5). The source writes the inverted
facts with an external LLM; here the model being unlearned writes them (project choice, offline). The released code
keeps the largest-MEMO facts in its run script and the smallest in its dataset class; `select` chooses, default
largest. Generations for MEMO use the chat prompt and at most `memo_tokens` tokens (the source: raw text, 200).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from ..errors import ConfigError
from .altpo import repeats_fact, sample_alternates
from .base import METHODS, LossMethod, LossOutput, OptionalRetain, StepBatch
from .common import answer_nll, retain_term

log = logging.getLogger(__name__)
SELECTIONS = ("largest", "smallest")


def memo_cuts(answer: str, stride: int) -> list[int]:
    """Character cut points k = 1, 1+stride, ... below len(answer)."""
    return list(range(1, len(answer), stride))


@lru_cache(maxsize=1)
def _rouge1():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def rouge1_precision(reference: str, prediction: str) -> float:
    """Share of the prediction's unigrams found in the reference (ROUGE-1 precision, Porter-stemmed)."""
    return _rouge1().score(reference, prediction)["rouge1"].precision


def memo_score(rests: list[str], continuations: list[str]) -> float:
    """MEMO of one answer: the mean ROUGE-1 precision of the model's continuation at each cut against the rest."""
    if not rests:
        return 0.0
    return sum(rouge1_precision(r, c) for r, c in zip(rests, continuations, strict=True)) / len(rests)


def distinct_inversions(samples: list[str], answer: str, focus: tuple[str, ...], limit: int) -> list[str]:
    """Up to `limit` distinct samples (first come first kept) that do not repeat the fact."""
    kept: list[str] = []
    for s in (s.strip() for s in samples):
        if s and s not in kept and not repeats_fact(s, answer, focus):
            kept.append(s)
        if len(kept) == limit:
            break
    return kept


def select_by_memo(candidates: list[str], scores: list[float], top_k: int, select: str) -> list[str]:
    """The `top_k` candidates of largest (or smallest) MEMO; ties keep the earlier candidate first."""
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i] if select == "largest" else scores[i], i))
    return [candidates[i] for i in order[:top_k]]


@METHODS.register("meow")
@dataclass
class MEOW(OptionalRetain, LossMethod):
    candidates: int = 4  # inverted facts written per forget item
    top_k: int = 3  # of those, kept for training by MEMO
    select: str = "largest"  # largest | smallest MEMO
    stride: int = 5  # MEMO's character stride
    memo_tokens: int = 32  # tokens generated per MEMO window
    retain_weight: float = 0.0
    retain_loss: str = "nll"  # nll | kl
    tries: int = 8  # samples drawn per item to find the candidates
    temperature: float = 1.0
    max_new_tokens: int = 48
    seed: int = 0
    summary = "fine-tune on the model's own inverted facts, the ones it memorises most (MEMO)"
    benchmark_settings = {
        "demo": {"train.lr": 1e-4},  # untuned
        "tofu": {"train.lr": 1e-5},
    }
    needs_alternate_answers = True

    def validate(self) -> None:
        super().validate()
        if self.select not in SELECTIONS:
            raise ConfigError(f"meow: select must be one of {', '.join(SELECTIONS)}, got {self.select!r}")
        if not 1 <= self.top_k <= self.candidates or self.tries < self.candidates:
            raise ConfigError("meow: 1 <= top_k <= candidates <= tries is required")
        if self.stride < 1 or self.memo_tokens < 1 or self.temperature <= 0 or self.max_new_tokens < 1:
            raise ConfigError("meow: stride, memo_tokens and max_new_tokens >= 1 and temperature > 0 are required")
        if self.retain_weight < 0:
            raise ConfigError("meow: retain_weight must be 0 or positive")

    def before_training(self, model, tokenizer, request, train_cfg, progress: bool = True) -> None:
        """Write the inverted facts with the model as it is, score them by MEMO and keep the top_k per item."""
        from ..data.formatting import prompt_text
        from ..data.refusals import refusal_for
        from ..metrics.generation import generate_answers

        if request.forget.texts:
            raise ConfigError("meow needs QA forget data (it writes inverted answers per question)")
        items = request.forget.qa
        samples = sample_alternates(model, tokenizer, items, self.tries, self.temperature, self.max_new_tokens,
                                    self.seed, "meow: writing inverted facts" if progress else None)
        was_training = model.training
        model.eval()
        candidates = [distinct_inversions(s, qa.answer, qa.focus, self.candidates)
                      for s, qa in zip(samples, items, strict=True)]
        windows = [(i, c, k) for i, cands in enumerate(candidates) for c, text in enumerate(cands)
                   for k in memo_cuts(text, self.stride)]
        starts = [prompt_text(tokenizer, items[i].question) + candidates[i][c][:k] for i, c, k in windows]
        continuations = generate_answers(model, tokenizer, [], 16, self.memo_tokens, prompts=starts,
                                         progress="meow: MEMO of the inverted facts" if progress else None)
        model.train(was_training)
        by_candidate: dict[tuple[int, int], tuple[list[str], list[str]]] = {}
        for (i, c, k), g in zip(windows, continuations, strict=True):
            rests, outs = by_candidate.setdefault((i, c), ([], []))
            rests.append(candidates[i][c][k:])
            outs.append(g.text)
        self.inversions, self.memo = [], []
        missing = 0
        for i, cands in enumerate(candidates):
            scores = [memo_score(*by_candidate.get((i, c), ([], []))) for c in range(len(cands))]
            self.memo.append(scores)
            if not cands:
                missing += 1
                self.inversions.append([refusal_for(i)])
            else:
                self.inversions.append(select_by_memo(cands, scores, self.top_k, self.select))
        if missing:
            log.warning("meow: %d of %d forget items got no inverted fact that changes the fact; they learn a "
                        "refusal", missing, len(items))

    def alternate_answers(self, index: int, qa) -> list[str]:
        """The inverted facts forget item `index` is fine-tuned on (used by build_training_data)."""
        inversions = getattr(self, "inversions", None)
        if inversions is None:
            raise ConfigError("meow: the inverted facts were not written (before_training was not called)")
        return inversions[index]

    def loss(self, model, batch: StepBatch, reference) -> LossOutput:
        if batch.forget_alt is None:
            raise ValueError("meow needs its inverted facts (forget_alt) for every forget example")
        forget = answer_nll(model, batch.forget_alt)
        if self.retain_weight == 0:
            return LossOutput(forget, {"inverted_nll": forget.item()})
        retain_value = retain_term(self.retain_loss, model, batch.retain, reference)
        return LossOutput(forget + self.retain_weight * retain_value,
                          {"inverted_nll": forget.item(), "retain": retain_value.item()})


__all__ = ["MEOW", "distinct_inversions", "memo_cuts", "memo_score", "rouge1_precision", "select_by_memo"]
