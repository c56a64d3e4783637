"""Greedy decoding that computes what every prompt shares once and stops computing finished answers.

Probe prompts are chat-formatted, so they begin with the same tokens (for the default model a 24-token system
turn, more than half of a probe prompt). `greedy_decode` runs that common prefix through the model once, copies
its key/value cache to each batch, runs the rest of every prompt (left-padded after the prefix, positions
counted from the prefix's end) and then decodes one token per step, dropping a row from the batch (and its cache)
as soon as it has emitted an end token or its last allowed token. The tokens are those of greedy search
(argmax of the raw logits at each step), the same as `model.generate(do_sample=False)` up to float rounding;
`plain_greedy` says for which models that holds (no logits processors in the generation config).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .logprobs import token_entropy
from .scoring import accepts_logits_to_keep, cache_argument, can_share_prompts, left_padded, run_opening

# Generation-config fields that make `generate` process the logits of greedy search, with their neutral values.
NEUTRAL_GREEDY_SETTINGS: dict[str, tuple] = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
    "watermarking_config": (None,),
}


def plain_greedy(model) -> bool:
    """Whether `greedy_decode` gives `model`'s own greedy search: a Hugging Face causal LM (not a wrapper with
    its own `generate`) whose forward takes a cache and positions, and whose generation config processes no
    logits."""
    from transformers import GenerationMixin

    if getattr(type(model), "generate", None) is not GenerationMixin.generate or not can_share_prompts(model):
        return False
    config = getattr(model, "generation_config", None)
    return config is not None and all(getattr(config, name, None) in neutral
                                      for name, neutral in NEUTRAL_GREEDY_SETTINGS.items())


def common_prefix(sequences: Sequence[Sequence[int]]) -> list[int]:
    """The longest token prefix every sequence shares, leaving each at least one token of its own (so every
    prompt still has a last position of its own to continue from)."""
    if not sequences:
        return []
    shortest = min(len(s) for s in sequences)
    n = 0
    while n < shortest - 1 and all(s[n] == sequences[0][n] for s in sequences):
        n += 1
    return list(sequences[0][:n])


def _forward(model, ids, mask, positions, cache, name, last_only: bool):
    extra = {"logits_to_keep": 1} if last_only and accepts_logits_to_keep(model) else {}
    if cache is not None:
        extra[name] = cache
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **extra)
    return out.logits[:, -1], out[name]


@torch.no_grad()
def greedy_decode(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos: set[int], pad_id: int,
                  batch_size: int = 64, progress: str | None = None) -> list[tuple[list[int], list[float]]]:
    """(generated tokens, each token's entropy) for every prompt (token ids), in the prompts' order; a row stops
    after its first end token (which is kept) or after `max_new_tokens`. Batches of `batch_size` prompts,
    sorted by length; `progress`: a progress bar's description, or None for none."""
    from tqdm.auto import tqdm

    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt has no last token to continue from")
    if max_new_tokens < 1:
        return [([], []) for _ in prompts]
    device = next(model.parameters()).device
    name = cache_argument(model)
    shared = common_prefix(prompts)
    opening = run_opening(model, shared)
    results: list[tuple[list[int], list[float]]] = [([], []) for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    starts = range(0, len(order), max(batch_size, 1))
    for start in tqdm(starts, desc=progress, disable=progress is None or len(starts) < 2, leave=False):
        rows = order[start: start + batch_size]
        for row, (tokens, entropies) in zip(rows, _decode_batch(model, [prompts[i][len(shared):] for i in rows],
                                                                len(shared), opening, max_new_tokens, eos,
                                                                pad_id, device, name), strict=True):
            results[row] = (tokens, entropies)
    return results


def _decode_batch(model, tails, shared_length, opening, max_new_tokens, eos, pad_id, device, name):
    """Greedy continuations of one batch of prompt tails that follow the shared prefix (`opening`, or none when
    `shared_length` is 0)."""
    n = len(tails)
    ids, tail_mask = left_padded(tails, pad_id)
    positions = shared_length + (tail_mask.cumsum(-1) - 1).clamp(min=0)
    mask = torch.cat([torch.ones((n, shared_length), dtype=torch.long), tail_mask], dim=1).to(device)
    cache = opening.copies(n) if opening is not None else None
    logits, cache = _forward(model, ids.to(device), mask, positions.to(device), cache, name, last_only=True)
    next_position = positions[:, -1].to(device) + 1
    active = list(range(n))
    out: list[tuple[list[int], list[float]]] = [([], []) for _ in range(n)]
    eos_ids = torch.tensor(sorted(eos), dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        chosen = logits.argmax(-1)
        entropy = token_entropy(logits).tolist()
        for k, row in enumerate(active):
            out[row][0].append(int(chosen[k]))
            out[row][1].append(entropy[k])
        if step == max_new_tokens - 1:
            break
        going = ~torch.isin(chosen, eos_ids)
        if not bool(going.any()):
            break
        if not bool(going.all()):
            keep = going.nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            mask, next_position, chosen = mask[keep], next_position[keep], chosen[keep]
            active = [active[int(k)] for k in keep]
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], dim=1)
        logits, cache = _forward(model, chosen[:, None], mask, next_position[:, None], cache, name, last_only=False)
        next_position = next_position + 1
    return out
