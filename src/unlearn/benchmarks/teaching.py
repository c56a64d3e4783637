"""Teach a model QA data through the one training loop: the demo's taught models and a benchmark's
target and retain models are made this way."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import TrainableConfig, TrainConfig
from ..data.request import QA, DataSpec
from ..models.params import select_trainable
from ..models.reference import Reference
from ..train import FineTune, TrainingData, TrainResult, train
from ..unlearner import encode_spec


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
