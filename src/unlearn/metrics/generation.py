"""Batched greedy generation with the KV cache; also returns each generated token's entropy."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.formatting import prompt_text
from ..models.logprobs import token_entropy


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


@torch.no_grad()
def generate_answers(
    model, tokenizer, questions: list[str], batch_size: int = 16, max_new_tokens: int = 32,
    prompts: list[str] | None = None, progress: str | None = None,
) -> list[Generation]:
    """Greedy answers to `questions` (chat-formatted), in padded batches sorted by length.
    `progress`: a description to show a progress bar with, or None for none."""
    from tqdm.auto import tqdm

    prompts = prompts if prompts is not None else [prompt_text(tokenizer, q) for q in questions]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    eos = _eos_ids(model, tokenizer)
    device = next(model.parameters()).device
    results: list[Generation | None] = [None] * len(prompts)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=progress, disable=progress is None or len(starts) < 2, leave=False):
        rows = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(rows):
            n = len(encoded[i])
            ids[r, width - n :] = torch.tensor(encoded[i])
            mask[r, width - n :] = 1
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
            do_sample=False, temperature=None, top_p=None, top_k=None, output_logits=True,
            return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(eos),
        )
        new = out.sequences[:, width:].cpu()
        entropy = torch.stack([token_entropy(step) for step in out.logits], dim=1).cpu() if out.logits else None
        for r, i in enumerate(rows):
            tokens = new[r].tolist()
            length = next((k for k, t in enumerate(tokens) if t in eos), len(tokens))
            kept = tokens[:length]
            ents = entropy[r, : max(length, 1)].tolist() if entropy is not None else []
            text = tokenizer.decode(kept, skip_special_tokens=True).strip()
            results[i] = Generation(text, kept, ents)
    return results  # type: ignore[return-value]
