"""Greedy and sampled decoding that compute what prompts share once and stop computing finished answers.

Probe prompts are chat-formatted, so they begin with the same tokens (for the default model a 24-token system
turn, more than half of a probe prompt). `greedy_decode` runs that common prefix through the model once, copies
its key/value cache to each batch, runs the rest of every prompt (left-padded after the prefix, positions
counted from the prefix's end) and then decodes one token per step, dropping a row from the batch (and its cache)
as soon as it has emitted an end token or its last allowed token. The tokens are those of greedy search
(argmax of the raw logits at each step), the same as `model.generate(do_sample=False)` up to float rounding;
`plain_greedy` says for which models that holds (no logits processors in the generation config).
`sample_decode` draws several continuations per prompt from the temperature-scaled nucleus (top-p) distribution,
computing each prompt once for all of them (`plain_sampling`: the models for which `generate` would sample the
same distribution; its draws use their own seeded generator, so they are other draws than `generate`'s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .logprobs import token_entropy
from .scoring import (
    accepts_logits_to_keep,
    cache_argument,
    can_share_prompts,
    common_opening,
    left_padded,
    run_opening,
)

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
# Further fields that filter the distribution `generate` samples from (top_k is passed as 0 by the caller).
NEUTRAL_SAMPLING_SETTINGS: dict[str, tuple] = {
    "typical_p": (None, 1.0),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "min_p": (None,),
    "top_h": (None,),
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
    return list(common_opening(sequences, min(len(s) for s in sequences) - 1))


def _forward(model, ids, mask, positions, cache, name, last_only: bool):
    extra = {"logits_to_keep": 1} if last_only and accepts_logits_to_keep(model) else {}
    if cache is not None:
        extra[name] = cache
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **extra)
    return out.logits[:, -1], out[name]


def plain_sampling(model) -> bool:
    """Whether `sample_decode` samples as `model.generate(do_sample=True, top_k=0, temperature, top_p)` does:
    `plain_greedy`, and the generation config adds no other sampling filter."""
    config = getattr(model, "generation_config", None)
    return plain_greedy(model) and all(getattr(config, name, None) in neutral
                                       for name, neutral in NEUTRAL_SAMPLING_SETTINGS.items())


def nucleus_logits(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Logits divided by `temperature`, with every token outside the nucleus set to -inf: sorted by probability,
    the least likely tokens whose cumulative probability stays at most 1 - top_p are removed (the most likely
    token always stays). Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration"; the order
    (temperature, then nucleus) is that of Hugging Face `generate`."""
    scores = logits.float() / temperature
    if top_p >= 1.0:
        return scores
    ascending, order = torch.sort(scores, dim=-1)
    removed = ascending.softmax(-1).cumsum(-1) <= 1 - top_p
    removed[..., -1] = False
    return scores.masked_fill(removed.scatter(-1, order, removed), float("-inf"))


def greedy_choice(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(-1)


@torch.no_grad()
def greedy_decode(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos: set[int], pad_id: int,
                  batch_size: int = 64, progress: str | None = None) -> list[tuple[list[int], list[float]]]:
    """(generated tokens, each token's entropy) for every prompt (token ids), in the prompts' order; a row stops
    after its first end token (which is kept) or after `max_new_tokens`. Batches of `batch_size` prompts,
    sorted by length; `progress`: a progress bar's description, or None for none."""
    rows = decode(model, prompts, max_new_tokens, eos, pad_id, greedy_choice, batch_size, 1, True, progress)
    return [row[0] for row in rows]


@torch.no_grad()
def sample_decode(model, prompts: Sequence[Sequence[int]], n: int, max_new_tokens: int, eos: set[int], pad_id: int,
                  temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, batch_size: int = 64,
                  progress: str | None = None) -> list[list[list[int]]]:
    """`n` sampled continuations (token ids, up to and including the first end token) of every prompt, from
    `nucleus_logits`; each prompt is computed once and its cache copied to its `n` rows. Seeded with its own
    generator: the same call gives the same samples and the global random state is not touched. Batches hold
    about `batch_size` rows."""
    if n < 1 or temperature <= 0 or not 0 < top_p <= 1:
        raise ValueError(f"sampling needs n >= 1, temperature > 0 and 0 < top_p <= 1 (got {n}, {temperature}, {top_p})")
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)

    def choose(logits: torch.Tensor) -> torch.Tensor:
        probs = nucleus_logits(logits, temperature, top_p).softmax(-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    rows = decode(model, prompts, max_new_tokens, eos, pad_id, choose, max(1, batch_size // n), n, False, progress)
    return [[tokens for tokens, _ in row] for row in rows]


def decode(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos: set[int], pad_id: int,
           choose: Callable[[torch.Tensor], torch.Tensor], batch_size: int, copies: int = 1, entropies: bool = True,
           progress: str | None = None) -> list[list[tuple[list[int], list[float]]]]:
    """Per prompt, `copies` continuations chosen token by token by `choose(logits) -> token ids` (with each
    token's entropy when `entropies`): the prompts' common opening computed once, each prompt once (its cache
    copied to its rows), a row dropped from the batch once it has given an end token or its last token."""
    from tqdm.auto import tqdm

    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt has no last token to continue from")
    if max_new_tokens < 1:
        return [[([], []) for _ in range(copies)] for _ in prompts]
    device = next(model.parameters()).device
    name = cache_argument(model)
    shared = common_prefix(prompts)
    opening = run_opening(model, shared)
    results: list[list[tuple[list[int], list[float]]]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    starts = range(0, len(order), max(batch_size, 1))
    for start in tqdm(starts, desc=progress, disable=progress is None or len(starts) < 2, leave=False):
        rows = order[start: start + batch_size]
        tails = [prompts[i][len(shared):] for i in rows]
        out = _decode_batch(model, tails, len(shared), opening, max_new_tokens, eos, pad_id, device, name, choose,
                            copies, entropies)
        for r, row in enumerate(rows):
            results[row] = out[r * copies: (r + 1) * copies]
    return results


def _decode_batch(model, tails, shared_length, opening, max_new_tokens, eos, pad_id, device, name, choose, copies,
                  entropies):
    """Continuations of one batch of prompt tails that follow the shared prefix (`opening`, or none when
    `shared_length` is 0), `copies` rows per tail (tail r's rows are r * copies ... r * copies + copies - 1)."""
    ids, tail_mask = left_padded(tails, pad_id)
    positions = shared_length + (tail_mask.cumsum(-1) - 1).clamp(min=0)
    mask = torch.cat([torch.ones((len(tails), shared_length), dtype=torch.long), tail_mask], dim=1).to(device)
    cache = opening.copies(len(tails)) if opening is not None else None
    logits, cache = _forward(model, ids.to(device), mask, positions.to(device), cache, name, last_only=True)
    next_position = positions[:, -1].to(device) + 1
    if copies > 1:
        cache.batch_repeat_interleave(copies)
        logits, mask, next_position = (t.repeat_interleave(copies, dim=0) for t in (logits, mask, next_position))
    n = len(tails) * copies
    active = list(range(n))
    out: list[tuple[list[int], list[float]]] = [([], []) for _ in range(n)]
    eos_ids = torch.tensor(sorted(eos), dtype=torch.long, device=device)
    for step in range(max_new_tokens):
        chosen = choose(logits)
        entropy = token_entropy(logits).tolist() if entropies else None
        for k, row in enumerate(active):
            out[row][0].append(int(chosen[k]))
            if entropy is not None:
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
