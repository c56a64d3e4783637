"""RWKU's metrics (Jin et al. 2024, arXiv 2406.10890; reference scorer `eval/eval_forget.py`, `eval/eval_mia.py`).

- Probe score: ROUGE-L *recall* of the gold answer by the generated answer, at the summary level of Lin 2004
  ("ROUGE: A Package for Automatic Evaluation of Summaries", §3.2): the reference and the generation are split
  into sentences at "."; every reference sentence r_i counts the words that lie on a longest common subsequence
  with any generated sentence (the union LCS), and R = Σ_i |LCS_∪(r_i, C)| / m with m the reference's word count.
  Words are whitespace-separated and compared case-sensitively, as RWKU's scorer (the `rouge` package) does; an
  empty generation scores 0.
- MIA score: the mean next-token NLL of a text scored alone, without a chat template (RWKU's LOSS attack; its
  tables report the mean over a set's texts for the forget members (FM) and retain members (RM)). Forgetting
  raises FM's loss while RM's stays.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import MetricResult, mean_result, metric
from .mia import loss_scores, text_scores


def sentences(text: str) -> list[list[str]]:
    """Words of each '.'-separated sentence of `text`, blank sentences left out."""
    return [s.split() for s in text.split(".") if s.split()]


def lcs_positions(reference: Sequence[str], candidate: Sequence[str]) -> set[int]:
    """Positions in `reference` of one longest common subsequence with `candidate` (dynamic programming)."""
    n, m = len(reference), len(candidate)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n):
        for j in range(m):
            table[i + 1][j + 1] = (table[i][j] + 1 if reference[i] == candidate[j]
                                   else max(table[i][j + 1], table[i + 1][j]))
    positions, i, j = set(), n, m
    while i and j:
        if reference[i - 1] == candidate[j - 1]:
            positions.add(i - 1)
            i, j = i - 1, j - 1
        elif table[i - 1][j] >= table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return positions


def summary_rouge_l_recall(generation: str, reference: str) -> float:
    """R_lcs = Σ_i |∪_j LCS(r_i, c_j)| / m (module docstring); NaN for a reference without words."""
    refs, cands = sentences(reference), sentences(generation)
    total = sum(len(r) for r in refs)
    if total == 0:
        return float("nan")
    hits = sum(len(set().union(*(lcs_positions(r, c) for c in cands))) for r in refs) if cands else 0
    return hits / total


@metric("rwku_rouge_l_recall", higher_is_better=True, version="1",
        description="RWKU probe score: summary-level ROUGE-L recall of the gold answer (Lin 2004), case-sensitive")
def rwku_rouge_l_recall(generations: Sequence[str], answers: Sequence[str]) -> MetricResult:
    if len(generations) != len(answers):
        raise ValueError(f"rwku_rouge_l_recall: {len(generations)} generations for {len(answers)} answers")
    return mean_result([summary_rouge_l_recall(g, a) for g, a in zip(generations, answers, strict=True)])


@metric("rwku_mia_loss", higher_is_better=True, version="1",
        description="RWKU LOSS: mean per-text NLL of a member set; on the forget members, higher means more forgotten")
def rwku_mia_loss(text_losses: Sequence[float]) -> MetricResult:
    return mean_result(text_losses)


def text_losses(model, tokenizer, texts: Sequence[str], batch_size: int = 8, max_length: int = 512) -> list[float]:
    """Mean next-token NLL of each text, scored alone (no chat template, cut to `max_length` tokens): the LOSS
    attack's score (`mia.loss_scores`); NaN for a text too short to predict a token."""
    return text_scores(model, tokenizer, texts, loss_scores, batch_size, max_length)
