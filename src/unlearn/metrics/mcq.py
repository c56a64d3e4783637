"""Multiple-choice accuracy by option log-likelihood, in the MMLU format.

Prompt (Hendrycks et al. 2021, "Measuring Massive Multitask Language Understanding", and its reference
evaluation code): an optional header "The following are multiple choice questions (with answers) about
{subject}.\\n\\n", then k solved examples and the question, each written as
"{question}\\nA. {a}\\nB. {b}\\nC. {c}\\nD. {d}\\nAnswer:" (solved ones followed by " {letter}\\n\\n").
The model's choice is the option whose continuation (" A", " B", ...) has the highest log-likelihood
after the prompt; accuracy is the share of questions where that is the gold letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..data.collate import collate
from ..data.formatting import Example
from ..errors import ConfigError
from ..models.logprobs import IGNORE
from .base import MetricResult, mean_result, metric

LETTERS = "ABCD"


@dataclass(frozen=True)
class MCQuestion:
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices


def format_question(q: MCQuestion, with_answer: bool = False) -> str:
    lines = [q.question] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(q.choices)]
    text = "\n".join(lines) + "\nAnswer:"
    return text + f" {LETTERS[q.answer]}\n\n" if with_answer else text


def mmlu_prompt(q: MCQuestion, subject: str | None = None, shots: Sequence[MCQuestion] = ()) -> str:
    """Zero- or few-shot MMLU prompt for `q` (see the module docstring)."""
    if len(q.choices) > len(LETTERS):
        raise ConfigError(f"at most {len(LETTERS)} choices are supported, got {len(q.choices)}")
    header = mmlu_header(subject) if subject else ""
    return header + "".join(format_question(s, with_answer=True) for s in shots) + format_question(q)


def mmlu_header(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


@torch.no_grad()
def option_logprobs(model, tokenizer, prompts: Sequence[str], n_options: Sequence[int],
                    batch_size: int = 16) -> list[list[float]]:
    """log p(" X" | prompt) for each prompt and each of its option letters, in padded batches.

    When every letter continuation is one token (as for the usual tokenizers), one forward pass of each
    prompt suffices; otherwise each (prompt, continuation) is scored as a sequence."""
    conts = [tokenizer(f" {letter}", add_special_tokens=False)["input_ids"] for letter in LETTERS]
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    device = next(model.parameters()).device
    if all(len(c) == 1 for c in conts):
        ids = [c[0] for c in conts]
        out: list[list[float]] = []
        for start in range(0, len(prompts), batch_size):
            rows = prompt_ids[start : start + batch_size]
            batch = collate([Example(tuple(r), tuple(r)) for r in rows], tokenizer.pad_token_id)
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
            last = batch["attention_mask"].sum(1) - 1
            logp = torch.log_softmax(logits[torch.arange(len(rows)), last.to(device)].float(), dim=-1)
            out += [[float(logp[r, ids[j]]) for j in range(n)] for r, n in
                    enumerate(n_options[start : start + batch_size])]
        return out
    from .likelihood import example_logprobs

    examples, owners = [], []
    for i, (p, n) in enumerate(zip(prompt_ids, n_options, strict=True)):
        for j in range(n):
            examples.append(Example(tuple(p + conts[j]), tuple([IGNORE] * len(p) + conts[j])))
            owners.append(i)
    scores = example_logprobs(model, examples, tokenizer.pad_token_id, batch_size)
    out = [[] for _ in prompts]
    for i, (total, _) in zip(owners, scores, strict=True):
        out[i].append(total)
    return out


@metric("mcq_accuracy", higher_is_better=True, version="1")
def mcq_accuracy(logprobs: Sequence[Sequence[float]], answers: Sequence[int]) -> MetricResult:
    """Share of questions whose highest-likelihood option is the gold one (ties go to the first option)."""
    if len(logprobs) != len(answers):
        raise ConfigError(f"mcq_accuracy: {len(logprobs)} score rows for {len(answers)} answers")
    values = []
    for row, answer in zip(logprobs, answers, strict=True):
        if any(x != x for x in row):  # a NaN score: report it, never pick around it
            values.append(float("nan"))
        else:
            values.append(float(max(range(len(row)), key=row.__getitem__) == answer))
    return mean_result(values)
