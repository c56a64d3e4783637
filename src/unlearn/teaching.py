"""Teach a model QA data through the one training loop (the demo's taught models, a benchmark's target and
retain models, every shard of `unlearn teach`), and the self-replay data that keeps what a model knew while it
is taught something else."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .config import TrainableConfig, TrainConfig
from .data.request import QA, DataSpec
from .io import atomic_write_json, sha256_json, unlearn_home
from .models.params import select_trainable
from .models.reference import Reference
from .train import FineTune, TrainingData, TrainResult, train
from .unlearner import encode_spec

REPLAY_VERSION = "2"  # part of the cached replay file's name: bump when the prompts or their answering change


def teach(
    model,
    tokenizer,
    learn: Sequence[QA],
    train_cfg: TrainConfig,
    trainable: TrainableConfig,
    replay: Sequence[QA] = (),
    replay_weight: float = 1.0,
    replay_loss: str = "nll",
    progress: bool = True,
    description: str = "teaching",
    texts: Sequence[str] = (),
    anchor: DataSpec | None = None,
) -> tuple[object, TrainResult]:
    """Fine-tune the `trainable` parameters on `learn` and `texts` (NLL on the answers and on the texts),
    optionally with replay data (`replay_loss` 'nll' on its answers or 'kl' to the starting model); returns the
    frozen model. `anchor` data is held to the starting model's next-token distributions (train.anchor_weight x KL),
    e.g. what earlier training taught that this training must not disturb."""
    model = select_trainable(model, trainable)
    learn_examples = encode_spec(tokenizer, DataSpec(texts=list(texts), qa=list(learn)), train_cfg.max_length)
    replay_examples = encode_spec(tokenizer, DataSpec(qa=list(replay)), train_cfg.max_length) if replay else []
    anchor_examples = encode_spec(tokenizer, anchor, train_cfg.max_length) if anchor else []
    method = FineTune(retain_weight=replay_weight if replay else 0.0, replay_loss=replay_loss)
    data = TrainingData(learn_examples, replay_examples, anchor=anchor_examples)
    reference = Reference(model) if method.needs_reference or data.uses_anchor(train_cfg) else None
    result = train(model, method, data, train_cfg, tokenizer.pad_token_id,
                   reference=reference, progress=progress, description=description)
    del reference
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, result


def complete_sentences(text: str) -> str:
    """Cut a generation after its last full stop, so a length-capped answer does not end mid-sentence."""
    end = max(text.rfind(". "), text.rfind(".\n"), text.rfind(".") if text.endswith(".") else -1)
    return text[: end + 1] if end > 0 else text


def self_replay(base_model: str, tokens: int) -> list[QA]:
    """The model's own greedy answers (at most `tokens` tokens, cut after the last full sentence) to a broad set
    of everyday prompts, none of them an evaluation question: replaying them while teaching keeps the model's
    behaviour on what it is not taught (self-distillation). Generated once per model, then read from a cache."""
    from .data.replay_prompts import replay_prompts
    from .models.loading import load_model

    questions = replay_prompts()
    key = sha256_json({"questions": questions, "tokens": tokens, "model": base_model})[:12]
    path = unlearn_home() / "demo" / f"replay-self-{key}-v{REPLAY_VERSION}.json"
    if not path.is_file():
        from .metrics.generation import generate_answers

        model, tokenizer = load_model(base_model)
        generations = generate_answers(model, tokenizer, questions, 32, tokens,
                                       progress="replay answers of the original model (once)")
        answers = [complete_sentences(g.text) for g in generations]
        atomic_write_json(path, [{"question": q, "answer": a} for q, a in zip(questions, answers, strict=True) if a])
    return [QA(item["question"], item["answer"]) for item in json.loads(path.read_text())]
