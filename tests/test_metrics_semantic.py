"""Semantic answer match: pooling and cosine by hand, threshold logic, and the packaged embedding model."""

from __future__ import annotations

import pytest
import torch

from unlearn.metrics import semantic


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert semantic.mean_pool(hidden, mask).tolist() == [[2.0, 3.0]]


def test_unit_rows():
    rows = semantic.unit(torch.tensor([[3.0, 4.0], [0.0, 0.0]])).tolist()
    assert rows[0] == pytest.approx([0.6, 0.8]) and rows[1] == [0.0, 0.0]


class FixedEmbedder:
    """Texts map to fixed unit vectors: cosines are known exactly."""

    vectors = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.0, 1.0]}

    def encode(self, texts):
        return torch.tensor([self.vectors[t] for t in texts])


def test_similarity_and_match_by_hand():
    emb = FixedEmbedder()
    sim = semantic.semantic_similarity(["a", "b", "c"], ["a", "a", "a"], embedder=emb)
    assert sim.per_example == pytest.approx([1.0, 0.6, 0.0])
    match = semantic.semantic_match(["a", "b", "c"], ["a", "a", "a"], threshold=0.6, embedder=emb)
    assert match.per_example == [1.0, 1.0, 0.0] and match.value == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 generations for 1 references"):
        semantic.semantic_similarity(["a", "b"], ["a"], embedder=emb)


def test_packaged_model_judges_paraphrases_as_rouge_cannot():
    from unlearn.metrics.text import rouge_l

    reference = "The capital of France is Paris."
    paraphrase, wrong = "Paris is France's capital city.", "The capital of France is Lyon."
    sim = semantic.semantic_similarity([paraphrase, wrong, "I like turtles."], [reference] * 3).per_example
    assert sim[0] > 0.8 and sim[2] < 0.2
    # ROUGE-L F1 ranks the wrong answer far above the paraphrase; the embedding model does not, and at the
    # default threshold it matches the paraphrase only
    assert rouge_l(wrong, reference)[2] > 0.8 > rouge_l(paraphrase, reference)[2]
    assert sim[0] > sim[1]
    assert semantic.semantic_match([paraphrase, wrong], [reference] * 2).per_example == [1.0, 0.0]
