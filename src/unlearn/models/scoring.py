"""Forward passes that project onto the vocabulary only the positions a loss or metric reads.

The output layer and the softmax over the vocabulary are a large share of a small model's cost (for the
135M default model, a 49,152-token vocabulary: more than a quarter of a training step), and the prompt
positions are never scored. `scored_logits` asks the model for the logits from the position before the
batch's first answer token onwards (`logits_to_keep`, which Hugging Face causal LMs accept) and cuts the
labels the same way, so every log-prob helper works on the pair unchanged and gives the same values.

Many scored texts share their prompt: the true and perturbed answers of one TOFU question, the true value and
the distractors of one likelihood-test wording. `pack_prefix_groups` and `prefix_shared_logits` run such a
prompt once and continue every answer from its key/value cache, in the same (logits, labels) layout.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from functools import lru_cache

import torch

from .logprobs import IGNORE


def first_scored_position(labels: torch.Tensor) -> int:
    """The earliest position whose logits are read: the one before the first counted label of any row
    (logits at t predict the token at t+1). 0 when nothing before it can be skipped."""
    counted = (labels != IGNORE).any(dim=0).nonzero()
    if len(counted) == 0:
        return max(labels.shape[1] - 1, 0)
    return max(int(counted[0]) - 1, 0)


@lru_cache(maxsize=64)
def _forward_parameters(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def _inner_class(model) -> type:
    """The causal LM's class under any wrapper (DistributedDataParallel, PEFT)."""
    inner = getattr(model, "module", model)
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return type(inner)


def accepts_logits_to_keep(model) -> bool:
    """Whether the causal LM under any wrapper takes `logits_to_keep`."""
    return "logits_to_keep" in _forward_parameters(_inner_class(model))


def can_share_prompts(model) -> bool:
    """Whether the model's forward takes a key/value cache and explicit positions (`prefix_shared_logits`)."""
    params = _forward_parameters(_inner_class(model))
    return "position_ids" in params and ("cache" in params or "past_key_values" in params)


def cache_argument(model) -> str:
    """The name under which the model's forward takes a key/value cache: `cache` (transformers 5.x) or
    `past_key_values` (earlier); the output field has the same name."""
    return "cache" if "cache" in _forward_parameters(_inner_class(model)) else "past_key_values"


def scored_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of `batch` from `first_scored_position` on; labels are not passed to the model, so
    no library loss is computed. Models without `logits_to_keep` compute every position and are cut after."""
    labels = batch["labels"]
    start = first_scored_position(labels)
    keep = labels.shape[1] - start
    extra = {"logits_to_keep": keep} if start > 0 and accepts_logits_to_keep(model) else {}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra).logits
    return logits[:, -keep:], labels[:, start:]


Chunk = tuple[tuple[int, ...] | None, list[int]]  # (shared prompt, or None: scored whole; example indices)


def first_label(labels: Sequence[int]) -> int:
    """Index of the first counted label of one example (its length when none is counted)."""
    return next((t for t, label in enumerate(labels) if label != IGNORE), len(labels))


def pack_prefix_groups(examples: Sequence, batch_size: int) -> list[list[Chunk]]:
    """Batches of (shared prefix, example indices): the examples whose tokens before the first counted label are
    the same share one prefix; a batch holds at most `batch_size` examples (a larger group is split), groups
    sorted by the length of their longest continuation, so that a batch pads its continuations little (they are
    most of the work)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(tuple(e.input_ids[: first_label(e.labels)]), []).append(i)
    chunks = [(prefix, members[k: k + batch_size]) for prefix, members in groups.items()
              for k in range(0, len(members), batch_size)]
    chunks.sort(key=lambda c: (max(len(examples[i].input_ids) for i in c[1]) - len(c[0]), len(c[0])))
    batches: list[list[Chunk]] = []
    rows = 0
    for chunk in chunks:
        if not batches or rows + len(chunk[1]) > batch_size:
            batches.append([])
            rows = 0
        batches[-1].append(chunk)
        rows += len(chunk[1])
    return batches


def prefix_shared_logits(model, examples: Sequence, chunks: list[Chunk], pad_id: int
                         ) -> tuple[list[int], torch.Tensor, torch.Tensor, int]:
    """(example indices, logits, labels, tokens computed) of the examples of `chunks` (one batch of
    `pack_prefix_groups`), one row per index in the order the chunks list them, in the layout `scored_logits`
    gives: logits[:, t] predicts labels[:, t + 1].

    Each shared prefix runs through the model once (left-padded, positions counted from its first real token)
    and its key/value cache is copied to every example that continues it; the continuations then run on that
    cache. Every counted token's log-probability is the one a full forward pass of the example gives, up to
    float rounding: the prompt is computed once per group instead of once per example."""
    device = next(model.parameters()).device
    prefixes = [p for p, _ in chunks]
    if any(len(p) == 0 for p in prefixes):
        raise ValueError("an example whose first token is counted has no prefix to share")
    width = max(len(p) for p in prefixes)
    prefix_ids = torch.full((len(prefixes), width), pad_id, dtype=torch.long)
    prefix_mask = torch.zeros((len(prefixes), width), dtype=torch.long)
    for g, p in enumerate(prefixes):
        prefix_ids[g, width - len(p):] = torch.tensor(p)
        prefix_mask[g, width - len(p):] = 1
    positions = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
    extra = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    out = model(input_ids=prefix_ids.to(device), attention_mask=prefix_mask.to(device),
                position_ids=positions.to(device), use_cache=True, **extra)
    name = cache_argument(model)
    cache, last = out[name], out.logits[:, -1]
    owner = [g for g, (_, members) in enumerate(chunks) for _ in members]
    rows = [i for _, members in chunks for i in members]
    cache.batch_select_indices(torch.tensor(owner, device=device))
    tails = [examples[i].input_ids[len(prefixes[g]):] for g, i in zip(owner, rows, strict=True)]
    tail_labels = [examples[i].labels[len(prefixes[g]):] for g, i in zip(owner, rows, strict=True)]
    length = max(len(t) for t in tails)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length + 1), IGNORE, dtype=torch.long)
    tail_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for r, (t, lab) in enumerate(zip(tails, tail_labels, strict=True)):
        ids[r, : len(t)] = torch.tensor(t)
        labels[r, 1: len(lab) + 1] = torch.tensor(lab)
        tail_mask[r, : len(t)] = 1
    prefix_length = torch.tensor([len(prefixes[g]) for g in owner])
    tail_positions = prefix_length[:, None] + torch.arange(length)[None, :]
    mask = torch.cat([prefix_mask[owner], tail_mask], dim=1)
    tail_logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=tail_positions.to(device),
                        use_cache=True, **{name: cache}).logits
    logits = torch.cat([last[owner].unsqueeze(1), tail_logits], dim=1)
    computed = int(prefix_mask.sum()) + int(tail_mask.sum())
    return rows, logits, labels.to(device), computed


def score_plan(examples: Sequence, batch_size: int, share_prefix: bool = True) -> list[list[Chunk]]:
    """The batches in which to score `examples`: prompts shared (`pack_prefix_groups`) when `share_prefix`, some
    examples share a prompt and every example has one before its first counted label (and a counted label);
    otherwise padded batches sorted by length (one chunk per batch, prefix None)."""
    starts = [first_label(e.labels) for e in examples]
    prompts = {tuple(e.input_ids[:t]) for e, t in zip(examples, starts, strict=True)}
    if share_prefix and len(prompts) < len(examples) and all(
            0 < t < len(e.input_ids) for e, t in zip(examples, starts, strict=True)):
        return pack_prefix_groups(examples, batch_size)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    return [[(None, order[k: k + batch_size])] for k in range(0, len(order), max(batch_size, 1))]


def batch_logits(model, examples: Sequence, batch: list[Chunk], pad_id: int
                 ) -> tuple[list[int], torch.Tensor, torch.Tensor, int]:
    """(example indices, logits, labels, tokens computed) of one batch of `score_plan`, in the layout of
    `scored_logits`."""
    from ..data.collate import collate, to_device

    if batch[0][0] is not None:
        return prefix_shared_logits(model, examples, batch, pad_id)
    rows = batch[0][1]
    padded = collate([examples[i] for i in rows], pad_id)
    logits, labels = scored_logits(model, to_device(padded, next(model.parameters()).device))
    return rows, logits, labels, int(padded["attention_mask"].sum())
