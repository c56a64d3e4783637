"""Forward passes that project onto the vocabulary only the positions a loss or metric reads.

The output layer and the softmax over the vocabulary are a large share of a small model's cost (for the
135M default model, a 49,152-token vocabulary: more than a quarter of a training step), and the prompt
positions are never scored. `scored_logits` asks the model for the logits from the position before the
batch's first answer token onwards (`logits_to_keep`, which Hugging Face causal LMs accept) and cuts the
labels the same way, so every log-prob helper works on the pair unchanged and gives the same values.

Many scored texts share their prompt: the true and perturbed answers of one TOFU question, the true value and
the distractors of one likelihood-test wording (and the words before the value). `pack_prefix_groups` and
`prefix_shared_logits` run such a prefix once and continue every answer from its key/value cache, in the same
(logits, labels) layout; `plan_openings` runs what the prompts of a call begin with (a chat template's system
turn) once for the whole call.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
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


def shared_prefix(examples: Sequence, members: Sequence[int]) -> tuple[int, ...]:
    """The longest run of tokens (same ids, same labels) that every member begins with, leaving each at least one
    token of its own: the prompt they share and any answer tokens that open all of them (the words before the
    value in a likelihood-test sentence)."""
    first = examples[members[0]]
    limit = min(len(examples[i].input_ids) for i in members) - 1
    n = 0
    while n < limit and all(examples[i].input_ids[n] == first.input_ids[n] and examples[i].labels[n] == first.labels[n]
                            for i in members):
        n += 1
    return tuple(first.input_ids[:n])


def pack_prefix_groups(examples: Sequence, batch_size: int, among: Sequence[int] | None = None) -> list[list[Chunk]]:
    """Batches of (shared prefix, example indices) of the examples `among` (default all): the examples whose
    tokens before the first counted label are the same form a group; a batch holds at most `batch_size` examples
    (a larger group is split); each chunk's prefix is what its members share (`shared_prefix`, at least their
    prompt). Chunks are sorted by the length of their longest continuation, so that a batch pads its
    continuations little (they are most of the work)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in range(len(examples)) if among is None else among:
        e = examples[i]
        groups.setdefault(tuple(e.input_ids[: first_label(e.labels)]), []).append(i)
    chunks = [(shared_prefix(examples, members[k: k + batch_size]), members[k: k + batch_size])
              for members in groups.values() for k in range(0, len(members), batch_size)]
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


@dataclass
class Opening:
    """Tokens that every prompt of a call begins with (a chat template's system turn), run through the model
    once; `copies` gives each batch its own key/value cache of them."""

    tokens: tuple[int, ...]
    cache: object

    def copies(self, n: int):
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(n)
        return cache


@torch.no_grad()
def run_opening(model, tokens: Sequence[int]) -> Opening | None:
    """The key/value cache of `tokens` (one row, positions from 0; no gradient); None when there are none."""
    if not tokens:
        return None
    device = next(model.parameters()).device
    ids = torch.tensor([list(tokens)], device=device)
    extra = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True,
                position_ids=torch.arange(len(tokens), device=device)[None], **extra)
    return Opening(tuple(tokens), out[cache_argument(model)])


def common_opening(sequences: Sequence[Sequence[int]], limit: int) -> tuple[int, ...]:
    """The longest prefix every sequence shares, at most `limit` tokens."""
    if not sequences:
        return ()
    n = 0
    while n < limit and all(len(s) > n and s[n] == sequences[0][n] for s in sequences):
        n += 1
    return tuple(sequences[0][:n])


def _chunk_starts(examples: Sequence, chunks: Sequence[Chunk]) -> list[int]:
    """Per chunk: the position of the first counted label inside its shared prefix (its length when none)."""
    return [first_label(examples[members[0]].labels[: len(prefix)]) for prefix, members in chunks]


def plan_openings(model, examples: Sequence, plan: Sequence[list[Chunk]]) -> dict[int, Opening]:
    """Per first token of the plan's shared prefixes (`score_plan` keeps those apart): what all those prefixes
    begin with, before any counted token (so each prefix keeps its first scored position), run once for the
    whole plan. Empty when the plan shares no prompt."""
    families: dict[int, list[Chunk]] = {}
    for batch in plan:
        for prefix, members in batch:
            if prefix is not None:
                families.setdefault(prefix[0], []).append((prefix, members))
    openings = {}
    for first, chunks in families.items():
        limit = min(_chunk_starts(examples, chunks)) - 1
        opening = run_opening(model, common_opening([prefix for prefix, _ in chunks], limit))
        if opening is not None:
            openings[first] = opening
    return openings


def left_padded(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask of `sequences`, padded on the left so that every one ends at the last column."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for r, s in enumerate(sequences):
        if len(s):
            ids[r, width - len(s):] = torch.tensor(list(s))
            mask[r, width - len(s):] = 1
    return ids, mask


def prefix_shared_logits(model, examples: Sequence, chunks: list[Chunk], pad_id: int, opening: Opening | None = None
                         ) -> tuple[list[int], torch.Tensor, torch.Tensor, int]:
    """(example indices, logits, labels, tokens computed) of the examples of `chunks` (one batch of
    `pack_prefix_groups`), one row per index in the order the chunks list them, in the layout `scored_logits`
    gives: logits[:, t] predicts labels[:, t + 1].

    Each shared prefix runs through the model once (after the plan's `opening`, whose cache is copied to it;
    left-padded, positions counted from its first real token) and its key/value cache is copied to every example
    that continues it; the continuations then run on that cache. Counted tokens inside a prefix are read from
    the prefix's own logits (once for all its examples). Every counted token's log-probability is the one a full
    forward pass of the example gives, up to float rounding: what the examples share is computed once."""
    device = next(model.parameters()).device
    prefixes = [p for p, _ in chunks]
    starts = _chunk_starts(examples, chunks)
    if any(start == 0 for start in starts):
        raise ValueError("an example whose first token is counted has no prefix to share")
    opened = len(opening.tokens) if opening is not None else 0
    if opening is not None and any(start <= opened or tuple(p[:opened]) != opening.tokens
                                   for p, start in zip(prefixes, starts, strict=True)):
        raise ValueError("the opening is not a prompt part of every shared prefix")
    name = cache_argument(model)
    rest_ids, rest_mask = left_padded([p[opened:] for p in prefixes], pad_id)
    prefix_mask = torch.cat([torch.ones((len(prefixes), opened), dtype=torch.long), rest_mask], dim=1)
    positions = opened + (rest_mask.cumsum(-1) - 1).clamp(min=0)
    counted_in_prefix = [len(p) - start for p, start in zip(prefixes, starts, strict=True)]
    keep = max(counted_in_prefix) + 1
    extra = {"logits_to_keep": keep} if accepts_logits_to_keep(model) else {}
    if opening is not None:
        extra[name] = opening.copies(len(prefixes))
    out = model(input_ids=rest_ids.to(device), attention_mask=prefix_mask.to(device),
                position_ids=positions.to(device), use_cache=True, **extra)
    cache, prefix_logits = out[name], out.logits[:, -keep:]
    owner = [g for g, (_, members) in enumerate(chunks) for _ in members]
    rows = [i for _, members in chunks for i in members]
    cache.batch_select_indices(torch.tensor(owner, device=device))
    tails = [examples[i].input_ids[len(prefixes[g]):] for g, i in zip(owner, rows, strict=True)]
    length = max(len(t) for t in tails)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    tail_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for r, t in enumerate(tails):
        ids[r, : len(t)] = torch.tensor(t)
        tail_mask[r, : len(t)] = 1
    prefix_length = torch.tensor([len(prefixes[g]) for g in owner])
    tail_positions = prefix_length[:, None] + torch.arange(length)[None, :]
    mask = torch.cat([prefix_mask[owner], tail_mask], dim=1)
    tail_logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=tail_positions.to(device),
                        use_cache=True, **{name: cache}).logits
    # Row r: logits from its first counted position inside the prefix (or the prefix's last) to its last token.
    row_logits, row_labels = [], []
    for r, (g, i) in enumerate(zip(owner, rows, strict=True)):
        counted = counted_in_prefix[g]
        row_logits.append(torch.cat([prefix_logits[g, keep - counted - 1:], tail_logits[r, : len(tails[r])]]))
        row_labels.append(torch.tensor([IGNORE, *examples[i].labels[starts[g]:]], dtype=torch.long))
    logits = torch.nn.utils.rnn.pad_sequence(row_logits, batch_first=True)
    labels = torch.nn.utils.rnn.pad_sequence(row_labels, batch_first=True, padding_value=IGNORE)
    computed = int(rest_mask.sum()) + int(tail_mask.sum())
    return rows, logits, labels.to(device), computed


def score_plan(examples: Sequence, batch_size: int, share_prefix: bool = True) -> list[list[Chunk]]:
    """The batches in which to score `examples`: prompts shared (`pack_prefix_groups`) when `share_prefix`, every
    example has a prompt before its first counted label (and a counted label) and some examples share a prompt
    or prompts open alike (a chat template's system turn, then run once: `plan_openings`); otherwise padded
    batches sorted by length (one chunk per batch, prefix None). Prompts with different first tokens are never
    in one batch, so that each batch continues one opening."""
    starts = [first_label(e.labels) for e in examples]
    prompts = {tuple(e.input_ids[:t]) for e, t in zip(examples, starts, strict=True)}
    if share_prefix and all(0 < t < len(e.input_ids) for e, t in zip(examples, starts, strict=True)) and (
            len(prompts) < len(examples) or len({p[0] for p in prompts}) < len(prompts)):
        families: dict[int, list[int]] = {}
        for i, e in enumerate(examples):
            families.setdefault(e.input_ids[0], []).append(i)
        return [batch for members in families.values() for batch in pack_prefix_groups(examples, batch_size, members)]
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    return [[(None, order[k: k + batch_size])] for k in range(0, len(order), max(batch_size, 1))]


def batch_logits(model, examples: Sequence, batch: list[Chunk], pad_id: int,
                 openings: dict[int, Opening] | None = None) -> tuple[list[int], torch.Tensor, torch.Tensor, int]:
    """(example indices, logits, labels, tokens computed) of one batch of `score_plan`, in the layout of
    `scored_logits`; `openings`: the plan's `plan_openings` (the tokens they computed once are not counted)."""
    from ..data.collate import collate, to_device

    if batch[0][0] is not None:
        return prefix_shared_logits(model, examples, batch, pad_id, (openings or {}).get(batch[0][0][0]))
    rows = batch[0][1]
    padded = collate([examples[i] for i in rows], pad_id)
    logits, labels = scored_logits(model, to_device(padded, next(model.parameters()).device))
    return rows, logits, labels, int(padded["attention_mask"].sum())
