"""A model behind a list of active guards, with the `generate` and forward interface the metrics use.

`GuardedModel(model, tokenizer, guards)` stands wherever a Hugging Face causal LM stands in this project:
greedy and sampled generation (`generate`, batched, left-padded), and teacher-forced log-likelihoods
(`model(input_ids, attention_mask, logits_to_keep=k).logits`). Each call applies the guards in a fixed
order:

  1. `reply`:   rows a guard answers itself (a refusal) skip the model. Under teacher forcing the guarded
                distribution is the refusal's: at each answer position while the answer so far follows the
                refusal, its next token has logit 0 and every other token -1e4; once the answer leaves the
                refusal, all tokens are equally likely (the guard says nothing about which answer is true);
  2. `prefix`:  text put before the prompt as a system turn (the chat template's own rendering of it);
  3. `noise`:   Gaussian noise of strength sigma (in units of the embedding matrix's RMS) added to the
                embeddings of the prompt's tokens, once, before the first layer;
  4. `decoder`: the next-token logits changed at every answer position (before temperature and top-p).

The prompt a guard sees is the part of each row up to the end of the chat template's generation header
(found as the token suffix every rendered prompt shares); rows without that header are treated as all
answer (raw text scoring), so only decoders act on them. Requests are added with `add_request`; the
model's weights are never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..data.formatting import prompt_text
from .base import Decoder, Guard, GuardError, PromptView
from .classifier import RequestIndex

FORCED = 1e4  # logit gap that makes a forced token certain in float32 (exp(-1e4) underflows to 0)
_SENTINEL = "QZXSENTINELQZX"


def common_suffix(a: Sequence[int], b: Sequence[int]) -> list[int]:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return list(a[len(a) - n:]) if n else []


def answer_marker(tokenizer) -> list[int]:
    """The token ids every rendered prompt ends with (the end of the user turn and the reply's header)."""
    first = tokenizer(prompt_text(tokenizer, "alpha beta"), add_special_tokens=False)["input_ids"]
    second = tokenizer(prompt_text(tokenizer, "gamma delta?"), add_special_tokens=False)["input_ids"]
    marker = common_suffix(first, second)
    if not marker:
        raise GuardError("cannot find where this tokenizer's prompts end (no common suffix); guards need a "
                         "chat template or the plain 'Question: ... Answer:' format")
    return marker


def find_last(row: Sequence[int], pattern: Sequence[int]) -> int:
    """Index just after the last occurrence of `pattern` in `row`, or -1."""
    n = len(pattern)
    for end in range(len(row), n - 1, -1):
        if list(row[end - n:end]) == list(pattern):
            return end
    return -1


def template_edges(tokenizer) -> tuple[str, str]:
    """The fixed text the template puts before and after a user message (special tokens removed)."""
    ids = tokenizer(prompt_text(tokenizer, _SENTINEL), add_special_tokens=False)["input_ids"]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    before, _, after = text.partition(_SENTINEL)
    return before, after


def forced_logits(answer: Sequence[int], forced: Sequence[int], vocab: int) -> torch.Tensor:
    """Teacher-forced logits of a model that always replies `forced`: row i predicts answer token i; it
    puts all mass on forced[i] while answer[:i] == forced[:i], and is uniform after the answer leaves it."""
    out = torch.zeros(len(answer), vocab)
    for i in range(len(answer)):
        if i < len(forced) and list(answer[:i]) == list(forced[:i]):
            out[i] = -FORCED
            out[i, forced[i]] = 0.0
    return out


@dataclass
class GuardedOutput:
    """What `generate(..., return_dict_in_generate=True)` returns: the sequences (prompt + reply) and, when
    asked for, the guarded logits of each generated position."""

    sequences: torch.Tensor
    logits: tuple[torch.Tensor, ...] | None = None


@dataclass
class ForwardOutput:
    logits: torch.Tensor


class _Processor:
    """A Decoder as a transformers logits processor; `owners[i]`: the view generated row i belongs to."""

    def __init__(self, decoder: Decoder, owners: list[int]):
        self.decoder, self.owners = decoder, owners

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.decoder.step(input_ids, scores, self.owners)


class GuardedModel:
    """`model` answering through `guards`; attributes not defined here (config, generation_config, device,
    ...) are the model's."""

    def __init__(self, model, tokenizer, guards: Sequence[Guard] = (), index: RequestIndex | None = None,
                 seed: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.guards = list(guards)
        self.index = index if index is not None else RequestIndex()
        self.seed = seed
        self.marker = answer_marker(tokenizer)
        self.edges = template_edges(tokenizer)
        self._noise_plan: tuple[torch.Tensor, torch.Tensor] | None = None
        self._hook = None

    # --- what stands in for the model ------------------------------------------------------------
    def __getattr__(self, name: str):
        if name.startswith("__") or name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    @property
    def guarded_weights(self):
        return self.model

    def parameters(self, recurse: bool = True):
        return self.model.parameters(recurse)

    def with_model(self, model) -> GuardedModel:
        """The same guards (and their state) in front of other weights (e.g. an attacked copy)."""
        other = copy.copy(self)
        other.model, other._hook, other._noise_plan = model, None, None
        return other

    @property
    def requests(self):
        return self.index.requests

    def add_request(self, request) -> None:
        """Guard one more request, effective from the next call (a request already guarded is kept as is)."""
        self.index.add(request)
        for guard in self.guards:
            guard.add(request, self)

    # --- prompts as guards see them ------------------------------------------------------------------
    def prompt_end(self, row: Sequence[int], whole_is_prompt: bool) -> int:
        end = find_last(row, self.marker)
        return end if end >= 0 else (len(row) if whole_is_prompt else 0)

    def view(self, ids: Sequence[int]) -> PromptView:
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        before, after = self.edges
        if before and text.startswith(before):
            text = text[len(before):]
        if after and text.endswith(after):
            text = text[: len(text) - len(after)]
        return PromptView(tuple(ids), text.strip())

    def views(self, prompts: list[list[int]]) -> list[PromptView]:
        return [self.view(p) for p in prompts]

    def _decide(self, views: list[PromptView]):
        """Per row: the reply (or None), the prefix token ids, the noise strength; and the decoders."""
        replies: list[str | None] = [None] * len(views)
        prefixes: list[list[str]] = [[] for _ in views]
        sigma = [0.0] * len(views)
        for guard in self.guards:
            for i, r in enumerate(guard.reply(views, self)):
                replies[i] = replies[i] if replies[i] is not None else r
            for i, p in enumerate(guard.prefix(views, self)):
                if p:
                    prefixes[i].append(p)
            sigma = [max(a, b) for a, b in zip(sigma, guard.noise(views, self), strict=True)]
        decoders = [d for d in (g.decoder(views, self) for g in self.guards) if d is not None]
        return replies, [self._prefix_ids(p) for p in prefixes], sigma, decoders

    def _prefix_ids(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        text = "\n\n".join(texts)
        if getattr(self.tokenizer, "chat_template", None):
            rendered = self.tokenizer.apply_chat_template([{"role": "system", "content": text}], tokenize=False)
        else:
            rendered = text + "\n\n"
        return self.tokenizer(rendered, add_special_tokens=False)["input_ids"]

    # --- embedding noise ---------------------------------------------------------------------------
    def _embedding_rms(self, weight: torch.Tensor) -> torch.Tensor:
        """sqrt(mean of E_ij^2), computed again only when the embedding matrix is another or has changed."""
        cached = self.__dict__.get("_rms")
        if cached is None or cached[0] is not weight or cached[1] != weight._version:
            cached = self.__dict__["_rms"] = (weight, weight._version, weight.detach().float().pow(2).mean().sqrt())
        return cached[2]

    @contextmanager
    def _noise(self, sigma: list[float], prompt_mask: torch.Tensor):
        """Add N(0, (sigma * rms(E))^2) to the embeddings where `prompt_mask` is 1, on the next call whose
        batch has `prompt_mask`'s shape (the prefill of a generation, or a forward pass)."""
        if not any(sigma):
            yield
            return
        embeddings = self.model.get_input_embeddings()
        rms = self._embedding_rms(embeddings.weight)
        strength = torch.tensor(sigma, dtype=torch.float32).view(-1, 1, 1) * rms
        self._noise_plan = (prompt_mask, strength)

        def hook(_module, _inputs, output):
            plan = self._noise_plan
            if plan is None or tuple(output.shape[:2]) != tuple(plan[0].shape):
                return output
            self._noise_plan = None
            mask, scale = plan
            generator = torch.Generator().manual_seed(self.seed)
            noise = torch.randn(output.shape, generator=generator) * scale * mask.unsqueeze(-1).float()
            return output + noise.to(output.device, output.dtype)

        handle = embeddings.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
            self._noise_plan = None

    # --- generation --------------------------------------------------------------------------------
    def _reply_ids(self, text: str, eos: int | None, limit: int) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return (ids + ([eos] if eos is not None else []))[:limit]

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, max_new_tokens: int = 32,
                 do_sample: bool = False, temperature: float | None = None, top_p: float | None = None,
                 top_k: int | None = None, num_return_sequences: int = 1, output_logits: bool = False,
                 return_dict_in_generate: bool = False, pad_token_id: int | None = None,
                 eos_token_id: int | list[int] | None = None, **kwargs):
        """Like `PreTrainedModel.generate` for left-padded batches: prompt + reply for each row (each row
        `num_return_sequences` times in a row), padded with `pad_token_id`."""
        from transformers import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        if kwargs.get("inputs_embeds") is not None:
            raise GuardError("a guarded model generates from token ids, not inputs_embeds")
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        n, device = num_return_sequences, input_ids.device
        pad = pad_token_id if pad_token_id is not None else (self.tokenizer.pad_token_id or 0)
        eos_list = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or [])
        rows = [input_ids[r][mask[r].bool()].tolist() for r in range(len(input_ids))]
        replies, prefixes, sigma, decoders = self._decide(self.views(rows))
        vocab = self.model.get_output_embeddings().weight.shape[0]
        replies_ids: dict[int, list[int]] = {r: self._reply_ids(t, eos_list[0] if eos_list else None, max_new_tokens)
                                             for r, t in enumerate(replies) if t is not None}
        todo = [r for r in range(len(rows)) if r not in replies_ids]
        generated: dict[int, torch.Tensor] = {}
        scores: dict[int, list[torch.Tensor]] = {}
        if todo:
            sub = [prefixes[r] + rows[r] for r in todo]
            width = max(len(s) for s in sub)
            ids = torch.full((len(sub), width), pad, dtype=torch.long)
            sub_mask = torch.zeros_like(ids)
            for i, s in enumerate(sub):
                ids[i, width - len(s):] = torch.tensor(s)
                sub_mask[i, width - len(s):] = 1
            owners = [r for r in todo for _ in range(n)]
            for decoder in decoders:
                decoder.begin(sub_mask.repeat_interleave(n, dim=0))
            processors = LogitsProcessorList([_Processor(d, owners) for d in decoders])
            if do_sample:
                if temperature not in (None, 1.0):
                    processors.append(TemperatureLogitsWarper(temperature))
                if top_k:
                    processors.append(TopKLogitsWarper(top_k))
                if top_p not in (None, 1.0):
                    processors.append(TopPLogitsWarper(top_p))
            noise_rows = torch.tensor([sigma[r] for r in todo]).repeat_interleave(n).tolist()
            with self._noise(noise_rows, sub_mask.repeat_interleave(n, dim=0)):
                out = self.model.generate(
                    input_ids=ids.to(device), attention_mask=sub_mask.to(device), max_new_tokens=max_new_tokens,
                    do_sample=do_sample, temperature=1.0 if do_sample else None, top_p=1.0 if do_sample else None,
                    top_k=0 if do_sample else None, num_return_sequences=n, logits_processor=processors,
                    output_scores=output_logits, return_dict_in_generate=True, pad_token_id=pad,
                    eos_token_id=eos_list or None, **kwargs)
            new = out.sequences[:, width:]
            for i, r in enumerate(todo):
                for j in range(n):
                    generated[r * n + j] = new[i * n + j]
                    if output_logits:
                        scores[r * n + j] = [s[i * n + j] for s in out.scores]
        length = max([len(t) for t in generated.values()] + [len(t) for t in replies_ids.values()] + [0])
        batch = len(rows) * n
        tail = torch.full((batch, length), pad, dtype=torch.long, device=device)
        step_logits = [torch.zeros(batch, vocab, device=device) for _ in range(length)] if output_logits else None
        for r in range(len(rows)):
            for j in range(n):
                k = r * n + j
                if r in replies_ids:
                    reply = torch.tensor(replies_ids[r], dtype=torch.long)
                    tail[k, :len(reply)] = reply
                    if step_logits is not None:
                        forced = forced_logits(replies_ids[r], replies_ids[r], vocab)
                        for t in range(len(reply)):
                            step_logits[t][k] = forced[t]
                else:
                    tail[k, :len(generated[k])] = generated[k]
                    if step_logits is not None:
                        for t, s in enumerate(scores[k]):
                            step_logits[t][k] = s.float()
        sequences = torch.cat([input_ids.repeat_interleave(n, dim=0), tail], dim=1)
        if not return_dict_in_generate:
            return sequences
        return GuardedOutput(sequences, tuple(step_logits) if step_logits is not None else None)

    # --- teacher-forced forward ----------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, logits_to_keep: int = 0,
                 **kwargs) -> ForwardOutput:
        """Guarded logits of every position (or of the last `logits_to_keep`), aligned with `input_ids`."""
        from ..models.scoring import accepts_logits_to_keep

        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        device = input_ids.device
        batch, width = input_ids.shape
        spans = []  # (first real column, number of real tokens) per row; padding is on one side
        rows = []
        for r in range(batch):
            real = mask[r].nonzero().flatten()
            first = int(real[0]) if len(real) else 0
            spans.append((first, len(real)))
            rows.append(input_ids[r, first:first + len(real)].tolist())
        cuts = [self.prompt_end(row, whole_is_prompt=False) for row in rows]
        replies, prefixes, sigma, decoders = self._decide(self.views([row[:c] for row, c in zip(rows, cuts, strict=True)]))
        keep_from = width - logits_to_keep if logits_to_keep else 0
        # index in each row's real tokens of the first output column needed
        need = [max(0, keep_from - first) for first, _ in spans]
        sub = [prefixes[r] + rows[r] for r in range(batch)]
        sub_width = max(len(s) for s in sub)
        ids = torch.full((batch, sub_width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        sub_mask = torch.zeros_like(ids)
        prompt_mask = torch.zeros_like(ids)
        for r, s in enumerate(sub):
            ids[r, :len(s)] = torch.tensor(s)
            sub_mask[r, :len(s)] = 1
            prompt_mask[r, :len(prefixes[r]) + cuts[r]] = 1
        start = min(len(prefixes[r]) + min(need[r], max(len(rows[r]) - 1, 0)) for r in range(batch))
        extra = {"logits_to_keep": sub_width - start} if start > 0 and accepts_logits_to_keep(self.model) else {}
        with self._noise(sigma, prompt_mask):
            logits = self.model(input_ids=ids.to(device), attention_mask=sub_mask.to(device), **extra).logits
        if not extra:
            logits = logits[:, start:]
        starts = [len(prefixes[r]) + max(cuts[r] - 1, 0) for r in range(batch)]
        for decoder in decoders:
            logits = decoder.teacher_forced(ids.to(device), sub_mask.to(device), logits, starts, start)
        vocab = logits.shape[-1]
        out = torch.zeros(batch, width - keep_from, vocab, dtype=logits.dtype, device=device)
        for r, (first, count) in enumerate(spans):
            lo = need[r]
            if lo >= count:
                continue
            src = len(prefixes[r]) + lo - start
            out[r, first + lo - keep_from:first + count - keep_from] = logits[r, src:src + count - lo]
            if replies[r] is not None:
                refusal = self._reply_ids(replies[r], self.tokenizer.eos_token_id, 10_000)
                c = max(cuts[r] - 1, 0)
                forced = forced_logits(rows[r][c + 1:] + [-1], refusal, vocab).to(device, logits.dtype)
                for i in range(max(c, lo), count):
                    out[r, first + i - keep_from] = forced[i - c]
        return ForwardOutput(out)

    forward = __call__
