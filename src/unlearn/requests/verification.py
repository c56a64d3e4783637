"""Verification of one request in a sequence: forgotten, no relapse of earlier requests, utility kept.

After a request is unlearned, three checks decide its fate (docs/requests.md):
  (a) forgotten:  accuracy on its forget (and paraphrased forget) probes <= max_forget_accuracy;
  (b) no relapse: for every earlier applied request, accuracy on its sealed forget probes
                  <= max(its accuracy when applied, max_forget_accuracy) + relapse_tolerance;
  (c) utility:    neighbour and general accuracy >= (1 - utility_tolerance) x their value on the model
                  before the first request.
A failure of (c) rejects the request (it damages the model for everyone: the defence against requests
crafted to degrade it); a failure of (a) or (b) alone rolls it back. Either way the model stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import EvalConfig, SequenceConfig
from ..data.request import ForgetRequest, Probe
from ..errors import ConfigError
from ..io import json_fields, sha256_json
from ..metrics.checks import check, failed_line
from ..metrics.generation import generate_answers
from ..metrics.probes import ask_groups, probe_accuracy, probe_groups
from .sealed import sealed_correct

UTILITY_GROUPS = ("neighbour", "general")
FORGET_GROUPS = ("forget", "forget_paraphrase")


def builtin_general_probes() -> list[Probe]:
    from ..data.general import general_knowledge

    return [Probe(g.question, g.short_answer, aliases=tuple(g.alternatives)) for g in general_knowledge()]


def request_groups(request: ForgetRequest) -> dict[str, list[Probe]]:
    """The probe groups a request is verified on; the built-in general-knowledge probes stand in for
    missing general probes, so utility is always checked."""
    groups = probe_groups(request)
    if "general" not in groups:
        groups["general"] = builtin_general_probes()
    return groups


def utility_hash(groups: dict[str, list[Probe]]) -> str:
    return sha256_json({g: [(p.question, p.answer, p.aliases) for p in groups[g]] for g in UTILITY_GROUPS
                        if g in groups})


@dataclass
class SequenceEvaluation:
    """A model asked one request's probe groups and every earlier request's sealed probes. The ledger stores
    it as {'groups': {name: {'n', 'accuracy'}}, 'earlier': {request id: accuracy}} and, only with keep_data, the
    clear-text `examples` of this request's own groups (they may hold the very data to delete)."""

    accuracy: dict[str, float]  # probe group -> share of its probes answered
    sizes: dict[str, int]  # probe group -> number of probes
    earlier: dict[str, float] = field(default_factory=dict)  # earlier request -> share of its sealed probes answered
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def stored(self, keep_data: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"groups": {g: {"n": self.sizes[g], "accuracy": a} for g, a in self.accuracy.items()},
                               "earlier": dict(self.earlier)}
        if keep_data:
            out["examples"] = self.examples
        return out

    @classmethod
    def from_stored(cls, data: Any, source: str) -> SequenceEvaluation:
        found = json_fields(data, ("groups",), source, optional=("earlier", "examples"))
        groups = found["groups"]
        if not isinstance(groups, dict) or not all(isinstance(g, dict) and "accuracy" in g for g in groups.values()):
            raise ConfigError(f"{source}: 'groups' must map group names to {{'n', 'accuracy'}}")
        return cls({g: r["accuracy"] for g, r in groups.items()}, {g: r.get("n", 0) for g, r in groups.items()},
                   found.get("earlier", {}), found.get("examples", {}))


def evaluate_sequence_probes(model, tokenizer, groups: dict[str, list[Probe]], earlier: dict[str, list[dict]],
                             salt: str, cfg: EvalConfig, progress: str | None = None) -> SequenceEvaluation:
    """Accuracy per probe group and per earlier request (sealed probes), from one batched generation.
    This request's probes are judged by the judge at `cfg.rouge_threshold`; earlier requests' sealed probes by
    containment alone (their answers are kept only as hashes)."""
    asked = {("group", name): [p.question for p in probes] for name, probes in groups.items()}
    asked |= {("earlier", request_id): [s["question"] for s in sealed] for request_id, sealed in earlier.items()}
    texts = ask_groups(lambda questions: [g.text for g in generate_answers(
        model, tokenizer, questions, cfg.generation_batch_size, cfg.max_new_tokens, progress=progress)], asked)
    result = SequenceEvaluation({}, {})
    for name, probes in groups.items():
        replies = texts[("group", name)]
        accuracy = probe_accuracy(replies, [p.answer for p in probes], [p.aliases for p in probes],
                                  cfg.rouge_threshold)
        result.accuracy[name], result.sizes[name] = accuracy.value, len(probes)
        result.examples[name] = [{"question": p.question, "generation": t, "correct": bool(c)}
                                 for p, t, c in zip(probes, replies, accuracy.per_example, strict=True)]
    for request_id, sealed in earlier.items():
        hits = [sealed_correct(t, s, salt) for t, s in zip(texts[("earlier", request_id)], sealed, strict=True)]
        result.earlier[request_id] = sum(hits) / len(hits) if hits else 0.0
    return result


@dataclass
class Verification:
    """The verdict on one request (or on the whole state): 'applied' when every check passed, else
    'rolled_back' or 'rejected' (a utility check failed), the failed checks in one line, and every check."""

    status: str
    reason: str
    checks: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return self.status == "applied"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "checks": self.checks}


def _check(name: str, value: float, threshold: float, at_most: bool, fails_to: str, description: str) -> dict:
    return check(name, round(value, 6), round(threshold, 6), at_most, description, fails_to=fails_to)


def verify(after: SequenceEvaluation, baseline: dict[str, float], earlier_then: dict[str, float],
           cfg: SequenceConfig) -> Verification:
    """The three checks on `after`, given the utility `baseline` (accuracy per group before the first request)
    and each earlier request's forget accuracy when it was applied."""
    checks = []
    for group in FORGET_GROUPS:
        if group in after.accuracy:
            checks.append(_check(f"forgotten: {group}", after.accuracy[group], cfg.max_forget_accuracy,
                                 True, "rolled_back", "share of the request's probes still answered"))
    for request_id, now in after.earlier.items():
        limit = max(earlier_then.get(request_id, 0.0), cfg.max_forget_accuracy) + cfg.relapse_tolerance
        checks.append(_check(f"no relapse: {request_id}", now, limit, True, "rolled_back",
                             "an earlier request's sealed probes answered now, against then"))
    for group in UTILITY_GROUPS:
        if group in after.accuracy and group in baseline:
            checks.append(_check(f"utility kept: {group}", after.accuracy[group],
                                 (1.0 - cfg.utility_tolerance) * baseline[group], False, "rejected",
                                 "accuracy against the model's before the first request"))
    failed = [c for c in checks if not c["passed"]]
    if any(c["fails_to"] == "rejected" for c in failed):
        status = "rejected"
    elif failed:
        status = "rolled_back"
    else:
        status = "applied"
    return Verification(status, failed_line(checks), checks)
