"""Batched generation with the KV cache: greedy answers (with each generated token's entropy) and sampled ones."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.formatting import prompt_text
from ..models.decoding import greedy_decode, plain_greedy, plain_sampling, sample_decode
from ..models.logprobs import token_entropy
from ..models.scoring import left_padded


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    entropies: list[float]


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return {i for i in ids if i is not None}


def _cut_at_eos(tokens: list[int], eos: set[int]) -> list[int]:
    return tokens[: next((k for k, t in enumerate(tokens) if t in eos), len(tokens))]


def _batches(model, tokenizer, prompts: list[str], size: int, progress: str | None):
    """Left-padded batches of `prompts`, sorted by length, on the model's device: yields (rows, ids, mask),
    where `rows` are the prompts' indices."""
    from tqdm.auto import tqdm

    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    device = next(model.parameters()).device
    starts = range(0, len(order), size)
    for start in tqdm(starts, desc=progress, disable=progress is None or len(starts) < 2, leave=False):
        rows = order[start : start + size]
        ids, mask = left_padded([encoded[i] for i in rows], tokenizer.pad_token_id)
        yield rows, ids.to(device), mask.to(device)


@torch.no_grad()
def generate_answers(
    model, tokenizer, questions: list[str], batch_size: int = 16, max_new_tokens: int = 32,
    prompts: list[str] | None = None, progress: str | None = None,
) -> list[Generation]:
    """Greedy answers to `questions` (chat-formatted), in padded batches sorted by length.
    `progress`: a description to show a progress bar with, or None for none. Plain Hugging Face models decode
    with `greedy_decode` (the prompts' common prefix computed once, finished answers dropped from the batch);
    others (guards, models with logits processors) through their own `generate`."""
    prompts = prompts if prompts is not None else [prompt_text(tokenizer, q) for q in questions]
    eos = _eos_ids(model, tokenizer)
    if prompts and plain_greedy(model):
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        decoded = greedy_decode(model, encoded, max_new_tokens, eos, tokenizer.pad_token_id, batch_size, progress)
        return [_generation(tokenizer, tokens, entropies, eos) for tokens, entropies in decoded]
    results: list[Generation | None] = [None] * len(prompts)
    for rows, ids, mask in _batches(model, tokenizer, prompts, batch_size, progress):
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
            do_sample=False, temperature=None, top_p=None, top_k=None, output_logits=True,
            return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(eos),
        )
        new = out.sequences[:, ids.shape[1]:].cpu()
        entropy = torch.stack([token_entropy(step) for step in out.logits], dim=1).cpu() if out.logits else None
        for r, i in enumerate(rows):
            results[i] = _generation(tokenizer, new[r].tolist(), entropy[r].tolist() if entropy is not None else [], eos)
    return results  # type: ignore[return-value]


def _generation(tokenizer, tokens: list[int], entropies: list[float], eos: set[int]) -> Generation:
    """The answer up to its first end token, with the entropies of its tokens (at least the first step's)."""
    kept = _cut_at_eos(tokens, eos)
    return Generation(tokenizer.decode(kept, skip_special_tokens=True).strip(), kept,
                      entropies[: max(len(kept), 1)])


@torch.no_grad()
def sample_answers(
    model, tokenizer, prompts: list[str], n: int, temperature: float = 1.0, top_p: float = 1.0,
    batch_size: int = 16, max_new_tokens: int = 32, seed: int = 0, progress: str | None = None,
) -> list[list[str]]:
    """`n` sampled answers to each already-formatted prompt (temperature and nucleus sampling), in padded
    batches of about `batch_size` sequences; seeded, so the same call gives the same samples. Plain Hugging Face
    models sample with `sample_decode` (each prompt computed once for its `n` answers); others through their own
    `generate`."""
    if n < 1 or temperature <= 0 or not 0 < top_p <= 1:
        raise ValueError(f"sampling needs n >= 1, temperature > 0 and 0 < top_p <= 1 (got {n}, {temperature}, {top_p})")
    eos = _eos_ids(model, tokenizer)
    if prompts and plain_sampling(model):
        encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        drawn = sample_decode(model, encoded, n, max_new_tokens, eos, tokenizer.pad_token_id, temperature, top_p,
                              seed, batch_size, progress)
        return [[tokenizer.decode(_cut_at_eos(tokens, eos), skip_special_tokens=True).strip() for tokens in row]
                for row in drawn]
    results: list[list[str]] = [[] for _ in prompts]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for rows, ids, mask in _batches(model, tokenizer, prompts, max(1, batch_size // n), progress):
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                do_sample=True, temperature=temperature, top_p=top_p, top_k=0, num_return_sequences=n,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(eos),
            )
            new = out[:, ids.shape[1]:].cpu()
            for r, i in enumerate(rows):
                for j in range(n):
                    kept = _cut_at_eos(new[r * n + j].tolist(), eos)
                    results[i].append(tokenizer.decode(kept, skip_special_tokens=True).strip())
    finally:
        torch.random.set_rng_state(generator_state)
    return results
