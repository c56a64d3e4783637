"""Evaluate a request's probes: one batched generation pass serves every generation metric."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..data.request import ForgetRequest, Probe
from .base import MetricResult, mean_result, metric
from .fluency import fluency_of
from .generation import Generation, generate_answers
from .judge import ROUGE_THRESHOLD, answered
from .likelihood import qa_mean_logprobs
from .text import rouge_l


@metric("probe_accuracy", higher_is_better=True, version="2")
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


def evaluate_probe_groups(
    model, tokenizer, groups: dict[str, list[Probe]], batch_size: int = 16, max_new_tokens: int = 32,
    progress: str | None = None, rouge_threshold: float | None = ROUGE_THRESHOLD,
) -> tuple[dict[str, dict], list[Generation]]:
    """Accuracy and ROUGE-L recall per group, from a single batched generation over all groups."""
    flat = [(name, probe) for name, probes in groups.items() for probe in probes]
    generations = generate_answers(model, tokenizer, [p.question for _, p in flat], batch_size, max_new_tokens,
                                   progress=progress)
    results: dict[str, dict] = {}
    for name in groups:
        rows = [(p, g) for (n, p), g in zip(flat, generations, strict=True) if n == name]
        texts, answers = [g.text for _, g in rows], [p.answer for p, _ in rows]
        acc = probe_accuracy(texts, answers, [p.aliases for p, _ in rows], rouge_threshold)
        rouge = rouge_l_recall(texts, answers)
        outcomes = [
            ProbeOutcome(p.question, p.answer, t, bool(c), r)
            for (p, _), t, c, r in zip(rows, texts, acc.per_example, rouge.per_example, strict=True)
        ]
        group_fluency = fluency_of([g for _, g in rows])
        results[name] = {
            "n": len(rows),
            "accuracy": acc.value,
            "rouge_l_recall": rouge.value,
            "fluency": group_fluency.to_dict(),
            "examples": [asdict(o) for o in outcomes],
        }
    return results, generations


def evaluate_request(
    model, tokenizer, request: ForgetRequest, batch_size: int = 16, max_new_tokens: int = 32,
    logprob_sets: tuple[str, ...] = ("forget", "retain"), progress: str | None = None,
    rouge_threshold: float | None = ROUGE_THRESHOLD,
) -> dict:
    """The first evaluation of a model on a request: probe accuracy/ROUGE per group, answer
    log-probabilities on the QA pairs of `logprob_sets`, the fluency of all generations and, when the forget
    probes have distractors (listed or from the request's generator), the likelihood knowledge test (of the
    weights, under any guards)."""
    from ..data.distractors import with_distractors
    from .knowledge import likelihood_knowledge

    request = with_distractors(request)
    groups = probe_groups(request)
    result: dict = {"groups": {}, "answer_logprob": {}}
    generations: list[Generation] = []
    if groups:
        result["groups"], generations = evaluate_probe_groups(
            model, tokenizer, groups, batch_size, max_new_tokens, progress=progress, rouge_threshold=rouge_threshold
        )
    for name, spec in (("forget", request.forget), ("retain", request.retain)):
        if spec.qa and name in logprob_sets:
            pairs = [(qa.question, qa.answer) for qa in spec.qa]
            result["answer_logprob"][name] = answer_logprob(model, tokenizer, pairs, batch_size).value
    result["fluency"] = fluency_of(generations).to_dict()
    if any(p.distractors for p in request.probes.forget):
        weights = getattr(model, "guarded_weights", model)  # what the weights know: guards do not change it
        result["likelihood"] = likelihood_knowledge(weights, tokenizer, request.probes.forget, request.forget.qa,
                                                    batch_size, progress="likelihood test" if progress else None)
    return result
