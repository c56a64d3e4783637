"""The likelihood knowledge test: does the model still rank a forgotten fact's true value first?

A model that no longer *says* a fact may still *know* it: asked to score the true value against
plausible values it was never taught, it gives the truth the highest likelihood. For each forget probe
with true value v_0 and distractors v_1..v_N, and each wording w (below), the candidate texts
t_w(v_j) are scored by the summed log-likelihood of the tokens from the value to the end of the text:

    s_w(j) = sum_t log p(y_t | x, y_<t)             (y = the value and the rest of the text)

and the truth's place among the candidates gives

    top1_w   = 1 / (1 + #{j > 0 : s_w(j) = s_w(0)})   if no s_w(j) > s_w(0), else 0   (ties split evenly)
    last_w   = 1 / (1 + #{j > 0 : s_w(j) = s_w(0)})   if no s_w(j) < s_w(0), else 0   (the truth ranked last)
    rank_w   = 1 + #{j > 0 : s_w(j) > s_w(0)} + #{j > 0 : s_w(j) = s_w(0)} / 2
    share_w  = exp s_w(0) / sum_j exp s_w(j)        (the truth's probability among the candidates)

A model that never learned the fact ranks the truth first by chance, 1/(N+1): that and the retain model's
value are the floor a forgotten request is compared with. The wordings:

    cloze       the probe's statement as plain text ("Ann was born in ___."), no chat template
    question    the probe's question with the full answer sentence (the statement) as the reply
    paraphrase  each paraphrased question with the full answer sentence
    value       the probe's question with the value alone as the reply

The headline `top1` is the mean over the wordings present (each wording weighs the same); `worst_top1`
is the largest of them. `last` is the other side of the same test: a model that pushes the truth below every
value it was never taught has not forgotten the fact but singled it out, and the truth can be read off as the
least likely candidate. A model that never learned the fact ranks it last by chance too, 1/(N+1). This follows
the multiple-choice likelihood protocol of knowledge probing (the truth ranked against distractors by
log-likelihood; docs/paper_index.md, "Likelihood knowledge test").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..data.formatting import Example, encode_qa
from ..data.request import QA, Probe, answer_spans, check_distractors, check_statement
from ..errors import ConfigError, UnlearnError
from ..models.logprobs import IGNORE
from .base import MetricResult, mean_result, metric
from .checks import check

WORDINGS = ("cloze", "question", "paraphrase", "value")
DEFAULT_MARGIN = 0.05  # a request counts as forgotten when top1 <= floor + this (issue acceptance criterion)
CHECK_NAMES = ("forgotten by likelihood", "not singled out by likelihood")  # the test's two sides, as checks


def truth_top1(scores: Sequence[float]) -> float:
    """1 / (1 + ties) when no distractor scores above the truth (scores[0]), else 0."""
    truth, others = scores[0], scores[1:]
    if any(s > truth for s in others):
        return 0.0
    return 1.0 / (1 + sum(s == truth for s in others))


def truth_last(scores: Sequence[float]) -> float:
    """1 / (1 + ties) when no distractor scores below the truth (scores[0]), else 0: top-1 of the negated scores."""
    return truth_top1([-s for s in scores])


def truth_rank(scores: Sequence[float]) -> float:
    """1-based rank of the truth (scores[0]) among all candidates; ties count half."""
    truth, others = scores[0], scores[1:]
    return 1.0 + sum(s > truth for s in others) + 0.5 * sum(s == truth for s in others)


def truth_share(scores: Sequence[float]) -> float:
    """Softmax probability of the truth (scores[0]) among the candidates."""
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    return weights[0] / sum(weights)


@metric("likelihood_top1", higher_is_better=False, version="1")
def likelihood_top1(score_rows: Sequence[Sequence[float]]) -> MetricResult:
    """Share of (probe, wording) rows whose true value (first score) has the highest log-likelihood."""
    return mean_result([truth_top1(r) for r in score_rows])


@dataclass(frozen=True)
class Candidate:
    """One scored text: which probe and wording it belongs to and which candidate value (0 = the truth)."""

    probe: int
    wording: str
    variant: int  # several paraphrases make several rows of one wording
    value: int
    example: Example


def statement_of(probe: Probe, forget_qa: Sequence[QA] = ()) -> str:
    """The probe's statement, or the answer of a forget QA pair asking the same question that holds the probe's
    answer once as whole words, or '' when neither exists. A statement without that one place is an error."""
    if probe.statement:
        check_statement(probe.statement, probe.answer, f"the statement of the probe {probe.question!r}")
        return probe.statement
    for qa in forget_qa:
        if qa.question == probe.question and len(answer_spans(qa.answer, probe.answer)) == 1:
            return qa.answer
    return ""


def substitute(statement: str, answer: str, value: str) -> str:
    """The statement with `value` in the place of `answer` (its one whole-word occurrence)."""
    at = answer_spans(statement, answer)[0]
    return statement[:at] + value + statement[at + len(answer):]


def encode_continuation(tokenizer, prefix: str, continuation: str, max_length: int) -> Example:
    """Plain text: `prefix` conditions, `continuation` carries the labels (a beginning-of-sequence token
    first where the tokenizer adds one)."""
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and (getattr(tokenizer, "add_bos_token", False) or not prefix_ids):
        prefix_ids = [bos, *prefix_ids]
    cont_ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = (prefix_ids + cont_ids)[:max_length]
    labels = ([IGNORE] * len(prefix_ids) + cont_ids)[:max_length]
    return Example(tuple(ids), tuple(labels))


def untruncated(encode, *args, max_length: int, what: str) -> Example:
    """`encode(*args, max_length)` when the whole text fits in `max_length` tokens, else a ConfigError.

    Candidates are compared by the summed log-likelihood of their continuations: a text cut short would be
    scored on part of its value, so the comparison would no longer be between the values."""
    whole = encode(*args, 1 << 30)
    if len(whole.input_ids) > max_length:
        raise ConfigError(f"{what} takes {len(whole.input_ids)} tokens, more than the likelihood test's "
                          f"max_length={max_length}; it scores whole texts, never cut ones: shorten it")
    return whole


def cloze_parts(statement: str, answer: str, value: str) -> tuple[str, str] | None:
    """(prefix, continuation) of the cloze wording, the space before the value going with the value; None
    when the answer opens the statement (nothing before it to condition on)."""
    at = answer_spans(statement, answer)[0]
    prefix = statement[:at]
    if not prefix.strip():
        return None
    rest = statement[at + len(answer):]
    stripped = prefix.rstrip()
    return stripped, prefix[len(stripped):] + value + rest


def texts_of(tokenizer, probe: Probe, value: str, statement: str, max_length: int) -> list[tuple[str, int, Example]]:
    """(wording, variant, encoded text) of every wording of `probe` with `value` in the answer's place."""
    def qa(question: str, answer: str) -> Example:
        return untruncated(encode_qa, tokenizer, question, answer, max_length=max_length,
                           what=f"the question {question!r} with the answer {answer!r}")

    out: list[tuple[str, int, Example]] = []
    if statement:
        sentence = substitute(statement, probe.answer, value)
        parts = cloze_parts(statement, probe.answer, value)
        if parts:
            out.append(("cloze", 0, untruncated(encode_continuation, tokenizer, *parts, max_length=max_length,
                                                what=f"the statement {''.join(parts)!r}")))
        out.append(("question", 0, qa(probe.question, sentence)))
        out += [("paraphrase", k, qa(q, sentence)) for k, q in enumerate(probe.paraphrases)]
    out.append(("value", 0, qa(probe.question, value)))
    return out


def candidates_of(tokenizer, probes: Sequence[Probe], forget_qa: Sequence[QA] = (), max_length: int = 256,
                  wordings: Sequence[str] = WORDINGS) -> list[Candidate]:
    """Every scored text of the test: per probe with distractors, per wording, per candidate value."""
    out: list[Candidate] = []
    for i, probe in enumerate(probes):
        if not probe.distractors:
            continue
        check_distractors(probe, f"the probe {probe.question!r}")  # probes built in Python were never loaded
        statement = statement_of(probe, forget_qa)
        for j, value in enumerate((probe.answer, *probe.distractors)):
            out += [Candidate(i, wording, variant, j, example)
                    for wording, variant, example in texts_of(tokenizer, probe, value, statement, max_length)
                    if wording in wordings]
    return out


def score_candidates(model, tokenizer, candidates: Sequence[Candidate], batch_size: int = 16,
                     progress: str | None = None) -> list[float]:
    """Summed answer log-likelihood of each candidate; the candidates of one wording share its prompt, which is
    computed once (`metrics.likelihood.example_logprobs`)."""
    from .likelihood import example_logprobs

    results = example_logprobs(model, [c.example for c in candidates], tokenizer.pad_token_id, batch_size, progress)
    return [total for total, _ in results]


def score_rows(candidates: Sequence[Candidate], scores: Sequence[float]) -> dict[tuple[int, str, int], list[float]]:
    """Scores grouped into one row per (probe, wording, variant), candidate values in order (truth first)."""
    rows: dict[tuple[int, str, int], list[float]] = {}
    for c, s in zip(candidates, scores, strict=True):
        rows.setdefault((c.probe, c.wording, c.variant), []).append(s)
    return rows


def summarize(rows: dict[tuple[int, str, int], list[float]], probes: Sequence[Probe]) -> dict:
    """Per wording and overall: top-1 accuracy, mean rank, truth share, and the chance levels."""
    per_wording: dict[str, dict] = {}
    for wording in WORDINGS:
        picked = [(key, r) for key, r in rows.items() if key[1] == wording]
        if not picked:
            continue
        n = len(picked)
        per_wording[wording] = {
            "n": n,
            "top1": sum(truth_top1(r) for _, r in picked) / n,
            "last": sum(truth_last(r) for _, r in picked) / n,
            "mean_rank": sum(truth_rank(r) for _, r in picked) / n,
            "truth_share": sum(truth_share(r) for _, r in picked) / n,
            "chance_top1": sum(1 / len(r) for _, r in picked) / n,
            "chance_rank": sum((len(r) + 1) / 2 for _, r in picked) / n,
        }
    tested = sorted({key[0] for key in rows})
    per_probe = []
    for i in tested:
        own = [r for key, r in rows.items() if key[0] == i]
        per_probe.append({"question": probes[i].question, "answer": probes[i].answer,
                          "n_candidates": len(own[0]), "top1": sum(truth_top1(r) for r in own) / len(own),
                          "last": sum(truth_last(r) for r in own) / len(own),
                          "mean_rank": sum(truth_rank(r) for r in own) / len(own)})
    if not per_wording:
        return {"n_probes": 0, "top1": None, "worst_top1": None, "last": None, "mean_rank": None,
                "truth_share": None, "chance_top1": None, "wordings": {}, "per_probe": []}

    def mean_of(key: str) -> float:
        return sum(w[key] for w in per_wording.values()) / len(per_wording)

    return {
        "n_probes": len(tested),
        "top1": mean_of("top1"),
        "worst_top1": max(w["top1"] for w in per_wording.values()),
        "last": mean_of("last"),
        "mean_rank": mean_of("mean_rank"),
        "truth_share": mean_of("truth_share"),
        "chance_top1": mean_of("chance_top1"),
        "chance_rank": mean_of("chance_rank"),
        "wordings": per_wording,
        "per_probe": per_probe,
    }


def likelihood_knowledge(model, tokenizer, probes: Sequence[Probe], forget_qa: Sequence[QA] = (),
                         batch_size: int = 16, max_length: int = 256, progress: str | None = None) -> dict:
    """The likelihood knowledge test on the probes that have distractors (see the module docstring)."""
    candidates = candidates_of(tokenizer, probes, forget_qa, max_length)
    if not candidates:
        return summarize({}, probes)
    scores = score_candidates(model, tokenizer, candidates, batch_size, progress)
    broken = next((c for c, s in zip(candidates, scores, strict=True) if math.isnan(s)), None)
    if broken is not None:  # NaN compares false with everything: the truth would count as ranked first
        raise UnlearnError(f"the model scored a candidate of the probe {probes[broken.probe].question!r} as NaN; its "
                           "weights or inputs are broken, so the likelihood test has no answer")
    return summarize(score_rows(candidates, scores), probes)


def likelihood_floor(retain: dict | None, chance: float | None, key: str = "top1") -> tuple[float | None, str]:
    """What a forgotten request's `key` (top1 or last) is compared with: the retain model's, else chance."""
    if retain is not None and retain.get(key) is not None:
        return retain[key], "retain model"
    return chance, "chance"


def likelihood_check(unlearned: dict, retain: dict | None = None, margin: float = DEFAULT_MARGIN) -> dict | None:
    """The check 'forgotten by likelihood': top1 <= floor + margin; None when the test was not run."""
    if unlearned.get("top1") is None:
        return None
    floor, against = likelihood_floor(retain, unlearned.get("chance_top1"))
    value = unlearned["top1"]
    return check(CHECK_NAMES[0], value, floor + margin, True,
                 f"likelihood top-1 of the true value among distractors <= {against} ({floor:.3f}) + {margin}")


def singled_out_check(unlearned: dict, retain: dict | None = None, margin: float = DEFAULT_MARGIN) -> dict | None:
    """The check 'not singled out by likelihood': last <= floor + margin (the share of facts whose true value
    is ranked below every distractor), the floor being the larger of the retain model's and chance (a model
    that never saw the facts ranks them last by chance: the untaught original model of the demo, 0.109, beside
    its retain model's 0.031); None when the test was not run or its result has no `last`."""
    if unlearned.get("last") is None:
        return None
    chance = unlearned.get("chance_top1")
    floor, against = likelihood_floor(retain, chance, "last")
    if chance is not None and floor is not None and chance > floor:
        floor, against = chance, "chance"  # ranking the truth last no more often than chance singles nothing out
    return check(CHECK_NAMES[1], unlearned["last"], floor + margin, True,
                 f"share of true values ranked below every distractor <= {against} ({floor:.3f}) + {margin}: "
                 "pushed below values never taught, the truth is still recognised")


def likelihood_checks(unlearned: dict, retain: dict | None = None, margin: float = DEFAULT_MARGIN) -> list[dict]:
    """Both sides of the likelihood test: not ranked first more often than the floor allows, nor last."""
    found = (likelihood_check(unlearned, retain, margin), singled_out_check(unlearned, retain, margin))
    return [c for c in found if c is not None]
