"""Log-probability helpers shared by methods and metrics (pure functions of tensors).

Convention: `labels` has -100 at positions that do not count (prompt, padding); logits at
position t predict the token at t+1, so both are shifted by one before comparing.
"""

from __future__ import annotations

import torch

IGNORE = -100


def shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align logits[t] with labels[t+1]."""
    return logits[:, :-1, :], labels[:, 1:]


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log p(label) after shifting, and the mask of counted positions. Shapes (B, T-1)."""
    logits, labels = shift(logits, labels)
    mask = labels != IGNORE
    safe = labels.masked_fill(~mask, 0)
    logits = logits.float()
    picked = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    logp = picked - torch.logsumexp(logits, dim=-1)
    return torch.where(mask, logp, torch.zeros_like(logp)), mask


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of answer-token log-probs per sequence: log pi(y|x). Shape (B,)."""
    logp, _ = token_logprobs(logits, labels)
    return logp.sum(-1)


def answer_lengths(labels: torch.Tensor) -> torch.Tensor:
    """Number of counted (answer) tokens per sequence, after the shift. Shape (B,)."""
    return (labels[:, 1:] != IGNORE).sum(-1)


def mean_token_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Length-normalised log-prob per sequence: log pi(y|x) / |y|. Shape (B,)."""
    return sequence_logprob(logits, labels) / answer_lengths(labels).clamp(min=1)


def nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over all counted tokens of the batch (the usual LM loss)."""
    logp, mask = token_logprobs(logits, labels)
    return -logp.sum() / mask.sum().clamp(min=1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each next-token distribution. Shape (..., )."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -torch.special.xlogy(logp.exp(), logp.exp()).sum(-1)
