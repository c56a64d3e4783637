"""Pieces shared by loss methods: forward passes, sequence log-probs and the retain terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.logprobs import IGNORE, nll, sequence_logprob
from ..models.params import decoder_layers
from ..models.scoring import scored_logits

RETAIN_LOSSES = ("nll", "kl")


def token_share(batch: dict[str, torch.Tensor] | None):
    """The weight of a token mean over this micro-batch within its step (set by the training loop under
    gradient accumulation, `mark_token_shares`; 1 otherwise): token mean × share, averaged over the step's
    micro-batches, is the token mean over the step's tokens."""
    return 1.0 if batch is None else batch.get("token_share", 1.0)


def logits_of(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of `model` on a batch, from the position before the first answer token on
    (`scored_logits`): every loss below reads only those positions."""
    return scored_logits(model, batch)


def answer_nll(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean NLL over the batch's answer tokens, weighted by its `token_share` (exact gradient accumulation)."""
    return nll(*logits_of(model, batch)) * token_share(batch)


@torch.no_grad()
def reference_logits(reference, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The same for the frozen reference model."""
    with reference.active() as model:
        return scored_logits(model, batch)


def seq_logprob(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """log pi(y|x) summed over answer tokens, per sequence."""
    return sequence_logprob(*logits_of(model, batch))


def masked_token_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is true (0 when none is); other positions are ignored
    even when they hold inf or NaN."""
    return torch.where(mask, values, torch.zeros_like(values)).sum() / mask.sum().clamp(min=1)


def kl_on_answers(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer positions of KL(p_ref || p_model) of the next-token distributions."""
    mask = labels[:, 1:] != IGNORE
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    logq = F.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    q = logq.exp()
    kl = (torch.special.xlogy(q, q) - torch.where(q > 0, q * logp, torch.zeros_like(q))).sum(-1)
    return masked_token_mean(kl, mask)


def weighted_token_ascent(logp: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over counted tokens of weight_t * log p_t, the weight held fixed (no gradient through it): minimising
    it lowers each token's log-prob in proportion to its weight (weight 1: gradient ascent)."""
    weighted = weight.detach() * logp
    return masked_token_mean(weighted, mask)


def check_same_vocabulary(tokenizer, teacher_tokenizer, teacher: str) -> None:
    """A teacher is read token by token: its tokenizer must be the model's."""
    if teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"teacher '{teacher}' uses another tokenizer than the model being unlearned "
                          f"({len(teacher_tokenizer)} against {len(tokenizer)} tokens or other token ids): "
                          "name the checkpoint this model was fine-tuned from")


def check_retain_loss(kind: str) -> None:
    if kind not in RETAIN_LOSSES:
        raise ConfigError(f"retain_loss '{kind}' is unknown; use one of {', '.join(RETAIN_LOSSES)}")


def retain_term(kind: str, model, retain: dict[str, torch.Tensor] | None, reference) -> torch.Tensor:
    """NLL of the retain batch, or KL from the reference on it. Zero when there is no retain data."""
    if retain is None:
        return torch.zeros((), device=next(model.parameters()).device)
    if kind == "kl":
        ref, _ = reference_logits(reference, retain)
        logits, labels = logits_of(model, retain)
        return kl_on_answers(logits, ref, labels) * token_share(retain)
    return answer_nll(model, retain)


def with_optional_retain(forget: torch.Tensor, forget_weight: float, retain_weight: float, retain_loss: str, model,
                         retain: dict[str, torch.Tensor] | None, reference) -> tuple[torch.Tensor, torch.Tensor]:
    """(w_f · forget + w_r · R(retain), R) for a method whose retain term is off at w_r = 0 (then R is 0 and not
    computed)."""
    retain_value = torch.zeros((), device=forget.device)
    if retain_weight > 0:
        retain_value = retain_term(retain_loss, model, retain, reference)
    return forget_weight * forget + retain_weight * retain_value, retain_value


def first_answer_position(labels: torch.Tensor) -> torch.Tensor:
    """Index of each row's first counted label (the row's length when it has none)."""
    counted = labels != IGNORE
    positions = torch.arange(labels.shape[1], device=labels.device).expand_as(labels)
    return torch.where(counted, positions, labels.shape[1]).min(dim=1).values


def spliced_batch(prompts: dict[str, torch.Tensor], answers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Prompt i of `prompts` followed by answer i mod len(answers) of `answers`, right-padded; only the answer
    is counted. Prompt: the tokens before the first counted label; answer: from the first counted label to the
    row's end (with `focus` labels, the answer's unfocused lead-in stays with the prompt)."""
    prompt_end, answer_start = first_answer_position(prompts["labels"]), first_answer_position(answers["labels"])
    answer_end = answers["attention_mask"].sum(dim=1)
    rows, prompt_lengths = [], []
    for i in range(prompts["input_ids"].shape[0]):
        j = i % answers["input_ids"].shape[0]
        prompt = prompts["input_ids"][i, : prompt_end[i]]
        answer = answers["input_ids"][j, answer_start[j]: answer_end[j]]
        rows.append(torch.cat([prompt, answer]))
        prompt_lengths.append(len(prompt))
    width = max(len(r) for r in rows)
    pad = prompts["input_ids"].new_zeros(())
    input_ids = torch.stack([torch.cat([r, pad.expand(width - len(r))]) for r in rows])
    attention = torch.stack([(torch.arange(width, device=r.device) < len(r)).long() for r in rows])
    labels = input_ids.masked_fill(attention == 0, IGNORE)
    for i, n in enumerate(prompt_lengths):
        labels[i, :n] = IGNORE
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def forget_nll_output(model, forget: dict[str, torch.Tensor]):
    """The forget answers' NLL as a loss to descend (the fine-tuning stage of the task-vector methods)."""
    from .base import LossOutput

    learn = answer_nll(model, forget)
    return LossOutput(learn, {"forget_nll": learn.item()})


def trainable_snapshot(model) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """(parameter, a copy of its value) for every trainable parameter: the starting point of weight-space methods."""
    return [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]


def retrain_from_start(model, start: list[tuple[torch.nn.Parameter, torch.Tensor]], method, tokenizer, request,
                       train_cfg, progress: bool, description: str) -> tuple[list[torch.Tensor], object]:
    """Train a copy of `model` with its trainable parameters reset to `start`, with `method` and the run's
    training settings (no early stop: no probes are checked); return the copy's trained values of those
    parameters in `start`'s order, and the TrainResult. `model` itself is not changed."""
    import copy

    names = {id(p): n for n, p in model.named_parameters()}
    twin = copy.deepcopy(model)
    twin_params = dict(twin.named_parameters())
    with torch.no_grad():
        for p, value in start:
            twin_params[names[id(p)]].copy_(value)
    result = train_stage(twin, method, tokenizer, request, train_cfg, progress, description)
    return [twin_params[names[id(p)]].detach() for p, _ in start], result


def trim(vector: torch.Tensor, density: float) -> torch.Tensor:
    """`vector` with all but its ceil(density · n) largest-magnitude entries set to zero (ties at the cut kept)."""
    keep = max(1, int(torch.ceil(torch.tensor(density * vector.numel())).item()))
    if keep >= vector.numel():
        return vector.clone()
    threshold = vector.abs().flatten().kthvalue(vector.numel() - keep + 1).values
    return torch.where(vector.abs() >= threshold, vector, torch.zeros_like(vector))


def own_answers(model, tokenizer, count: int, progress: str | None = None) -> list:
    """The first `count` built-in broad prompts (data/replay_prompts.py) as QA pairs with `model`'s own greedy
    answers (at most 48 new tokens; empty answers dropped): what the model does on everything else, to replay or
    distil. The model is put back in the mode it was in."""
    from ..data.replay_prompts import replay_prompts
    from ..data.request import QA
    from ..metrics.generation import generate_answers

    questions = replay_prompts()[:count]
    if not questions:
        return []
    was_training = model.training
    model.eval()
    try:
        answers = generate_answers(model, tokenizer, questions, 16, 48, progress=progress)
    finally:
        model.train(was_training)
    return [QA(q, a.text) for q, a in zip(questions, answers, strict=True) if a.text.strip()]


def train_stage(model, method, tokenizer, request, train_cfg, progress: bool, description: str):
    """Train `model` in place with `method` on `request`'s data as one stage of another method (no early stop, no
    repair steps): the method prepared first and released after; the reference (for a KL term or anchors) is
    `model` as it is now. Returns the TrainResult."""
    import dataclasses

    from ..models.reference import Reference
    from ..train.loop import train
    from ..unlearner import build_training_data, prepare_method, release_method

    cfg = dataclasses.replace(train_cfg, early_stop=False, repair_steps=0)
    prepare_method(method, model, tokenizer, request, cfg, progress)
    data = build_training_data(tokenizer, request, method, cfg.max_length)
    reference = Reference(model) if method.needs_reference or data.uses_anchor(cfg) else None
    try:
        return train(model, method, data, cfg, tokenizer.pad_token_id, reference=reference, progress=progress,
                     description=description)
    finally:
        release_method(method)


# Representation methods (rmu, adaptive_rmu): activations at one decoder layer.


def rmu_trainable(method: str, layer: int, n_layers: int):
    """The MLP output projections of decoder layers layer−2..layer: what the RMU family trains."""
    from ..config import TrainableConfig

    if layer >= n_layers:
        raise ConfigError(f"{method}.layer={layer} but the model has {n_layers} layers")
    layers = "|".join(str(i) for i in range(layer - 2, layer + 1))
    return TrainableConfig(mode="pattern", pattern=rf"layers\.({layers})\.mlp\.down_proj\.weight$")


class _Stop(Exception):
    pass


def hidden_at(model, batch: dict[str, torch.Tensor], layer: int) -> torch.Tensor:
    """Output of decoder layer `layer` (the forward pass stops there)."""
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output
        raise _Stop

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured["h"]


def masked_mse(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over non-padding tokens and hidden dimensions of (h - target)^2."""
    mask = mask.unsqueeze(-1).to(h.dtype)
    return (((h - target) ** 2) * mask).sum() / (mask.sum() * h.shape[-1]).clamp(min=1)


def after_common_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mask of non-padding positions after the longest prefix shared by every row (right-padded batch)."""
    same = (input_ids == input_ids[:1]).all(dim=0) & attention_mask.bool().all(dim=0)
    prefix = int(same.long().cumprod(dim=0).sum().item())
    if prefix >= int(attention_mask.sum(dim=1).min().item()):  # one row is all prefix: keep everything
        prefix = 0
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    return attention_mask.bool() & (positions >= prefix).unsqueeze(0)


def control_vector(hidden_size: int, coeff: float, seed: int) -> torch.Tensor:
    """c * u, u ~ U[0,1)^d normalised (WMDP Algorithm 1)."""
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(hidden_size, generator=generator)
    return coeff * u / u.norm()
