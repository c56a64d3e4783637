"""Evaluate a request's probes: one batched generation pass serves every generation metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from ..data.request import ForgetRequest, Probe
from ..io import json_fields, json_mapping
from .base import MetricResult, mean_result, metric
from .fluency import fluency_of
from .generation import Generation, generate_answers
from .judge import JUDGE_VERSION, ROUGE_THRESHOLD, answered
from .likelihood import qa_mean_logprobs
from .text import rouge_l

K = TypeVar("K")
T = TypeVar("T")


@metric("probe_accuracy", higher_is_better=True, version=JUDGE_VERSION)
def probe_accuracy(generations: list[str], answers: list[str], aliases: list[tuple[str, ...]] | None = None,
                   rouge_threshold: float | None = ROUGE_THRESHOLD) -> MetricResult:
    """Share of generations that answer their probe by the judge (`metrics.judge.answered`: the gold answer or
    an alias as a whole-word span, or ROUGE-L recall >= `rouge_threshold`)."""
    aliases = aliases or [()] * len(answers)
    return mean_result([
        float(answered(g, (answer, *alias), rouge_threshold))
        for g, answer, alias in zip(generations, answers, aliases, strict=True)
    ])


@metric("rouge_l_recall", higher_is_better=True, version="1")
def rouge_l_recall(generations: list[str], answers: list[str]) -> MetricResult:
    """ROUGE-L recall of each generation against its gold answer (rouge_score, stemmed)."""
    return mean_result([rouge_l(g, a)[1] for g, a in zip(generations, answers, strict=True)])


@metric("answer_logprob", higher_is_better=True, version="1")
def answer_logprob(model, tokenizer, pairs: list[tuple[str, str]], batch_size: int = 16) -> MetricResult:
    """Length-normalised log p(answer | question), teacher-forced."""
    return mean_result(qa_mean_logprobs(model, tokenizer, pairs, batch_size))


def expand_paraphrases(probes: list[Probe]) -> list[Probe]:
    """One probe per paraphrased question, with the original answer."""
    return [Probe(p, probe.answer, aliases=probe.aliases) for probe in probes for p in probe.paraphrases]


def probe_groups(request: ForgetRequest) -> dict[str, list[Probe]]:
    """forget / forget_paraphrase / neighbour / general groups present in the request."""
    groups = dict(request.probes.groups())
    paraphrases = expand_paraphrases(request.probes.forget)
    if paraphrases:
        groups["forget_paraphrase"] = paraphrases
    return groups


@dataclass
class ProbeOutcome:
    question: str
    answer: str
    generation: str
    correct: bool
    rouge_l_recall: float


GROUP_FIELDS = ("n", "accuracy", "rouge_l_recall", "fluency", "examples")
EVALUATION_FIELDS = ("groups", "answer_logprob", "fluency")


@dataclass
class GroupEvaluation:
    """One probe group: its size, accuracy by the judge, mean ROUGE-L recall, fluency and every example."""

    n: int
    accuracy: float
    rouge_l_recall: float
    fluency: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, source: str) -> GroupEvaluation:
        return cls(**json_fields(data, GROUP_FIELDS, source))


@dataclass
class RequestEvaluation:
    """One model's evaluation on a request, and its JSON form (the `evaluations` of a report):

        {"groups": {name: {"n", "accuracy", "rouge_l_recall", "fluency", "examples"}},
         "answer_logprob": {"forget": ..., "retain": ...}, "fluency": {...},
         "likelihood": {...}}        # only when the forget probes have distractors

    `from_json` refuses a form that lacks a field, naming it."""

    groups: dict[str, GroupEvaluation]
    answer_logprob: dict[str, float]
    fluency: dict[str, Any]
    likelihood: dict[str, Any] | None = None

    def accuracy(self, group: str) -> float:
        return self.groups[group].accuracy

    def to_json(self) -> dict[str, Any]:
        out = {"groups": {name: g.to_json() for name, g in self.groups.items()},
               "answer_logprob": dict(self.answer_logprob), "fluency": dict(self.fluency)}
        if self.likelihood is not None:
            out["likelihood"] = self.likelihood
        return out

    @classmethod
    def from_json(cls, data: Any, source: str = "the evaluation") -> RequestEvaluation:
        found = json_fields(data, EVALUATION_FIELDS, source, optional=("likelihood",))
        groups = json_mapping(found, "groups", source,
                              lambda g, name: GroupEvaluation.from_json(g, f"{source}, group '{name}'"))
        return cls(groups, found["answer_logprob"], found["fluency"], found.get("likelihood"))


def ask_groups(ask: Callable[[list[str]], list[T]], groups: dict[K, list[str]]) -> dict[K, list[T]]:
    """Every group's questions in one call of `ask` (one batched generation pass over all of them), the answers
    handed back per group in order. The one way every application asks a model its probes: `ask` generates
    (greedy answers, or replies behind a guard), the groups are a request's probe groups and anything else asked
    in the same pass (an earlier request's sealed probes)."""
    flat = [q for questions in groups.values() for q in questions]
    answers = ask(flat)
    if len(answers) != len(flat):
        raise ValueError(f"asked {len(flat)} questions, got {len(answers)} answers")
    out: dict[K, list[T]] = {}
    at = 0
    for name, questions in groups.items():
        out[name] = answers[at:at + len(questions)]
        at += len(questions)
    return out


def evaluate_probe_groups(
    model, tokenizer, groups: dict[str, list[Probe]], batch_size: int = 16, max_new_tokens: int = 32,
    progress: str | None = None, rouge_threshold: float | None = ROUGE_THRESHOLD,
) -> tuple[dict[str, GroupEvaluation], list[Generation]]:
    """Accuracy and ROUGE-L recall per group, from a single batched generation over all groups."""
    answered_by_group = ask_groups(
        lambda questions: generate_answers(model, tokenizer, questions, batch_size, max_new_tokens, progress=progress),
        {name: [p.question for p in probes] for name, probes in groups.items()})
    results: dict[str, GroupEvaluation] = {}
    for name, probes in groups.items():
        generations = answered_by_group[name]
        texts, answers = [g.text for g in generations], [p.answer for p in probes]
        acc = probe_accuracy(texts, answers, [p.aliases for p in probes], rouge_threshold)
        rouge = rouge_l_recall(texts, answers)
        outcomes = [ProbeOutcome(p.question, p.answer, t, bool(c), r)
                    for p, t, c, r in zip(probes, texts, acc.per_example, rouge.per_example, strict=True)]
        results[name] = GroupEvaluation(len(probes), acc.value, rouge.value, fluency_of(generations).to_dict(),
                                        [asdict(o) for o in outcomes])
    return results, [g for generations in answered_by_group.values() for g in generations]


def evaluate_request(
    model, tokenizer, request: ForgetRequest, batch_size: int = 16, max_new_tokens: int = 32,
    logprob_sets: tuple[str, ...] = ("forget", "retain"), progress: str | None = None,
    rouge_threshold: float | None = ROUGE_THRESHOLD, generation_batch_size: int | None = None,
) -> RequestEvaluation:
    """The first evaluation of a model on a request: probe accuracy/ROUGE per group, answer
    log-probabilities on the QA pairs of `logprob_sets`, the fluency of all generations and, when the forget
    probes have distractors (listed or from the request's generator), the likelihood knowledge test (of the
    weights, under any guards). Probes are answered in batches of `generation_batch_size` (default
    `batch_size`), texts scored in batches of `batch_size`."""
    from ..data.distractors import with_distractors
    from .knowledge import likelihood_knowledge

    request = with_distractors(request)
    groups = probe_groups(request)
    results: dict[str, GroupEvaluation] = {}
    generations: list[Generation] = []
    if groups:
        results, generations = evaluate_probe_groups(
            model, tokenizer, groups, generation_batch_size or batch_size, max_new_tokens, progress=progress, rouge_threshold=rouge_threshold
        )
    logprobs = {}
    for name, spec in (("forget", request.forget), ("retain", request.retain)):
        if spec.qa and name in logprob_sets:
            pairs = [(qa.question, qa.answer) for qa in spec.qa]
            logprobs[name] = answer_logprob(model, tokenizer, pairs, batch_size).value
    likelihood = None
    if any(p.distractors for p in request.probes.forget):
        weights = getattr(model, "guarded_weights", model)  # what the weights know: guards do not change it
        likelihood = likelihood_knowledge(weights, tokenizer, request.probes.forget, request.forget.qa,
                                          batch_size, progress="likelihood test" if progress else None)
    return RequestEvaluation(results, logprobs, fluency_of(generations).to_dict(), likelihood)
