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

from ..config import EvalConfig, SequenceConfig
from ..data.request import ForgetRequest, Probe
from ..io import sha256_json
from ..metrics.checks import check, failed_line
from ..metrics.generation import generate_answers
from ..metrics.probes import probe_accuracy, probe_groups
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


def evaluate_sequence_probes(model, tokenizer, groups: dict[str, list[Probe]], earlier: dict[str, list[dict]],
                             salt: str, cfg: EvalConfig, progress: str | None = None) -> dict:
    """Accuracy per probe group and per earlier request (sealed probes), from one batched generation.

    Returns {'groups': {name: {'n', 'accuracy'}}, 'earlier': {request id: accuracy}, 'examples': {...}}
    where examples keep the clear-text outcomes of this request's own groups only. This request's probes are
    judged by the judge at `cfg.rouge_threshold`; earlier requests' sealed probes by containment alone (their
    answers are kept only as hashes)."""
    questions = [p.question for probes in groups.values() for p in probes]
    questions += [s["question"] for sealed in earlier.values() for s in sealed]
    texts = [g.text for g in generate_answers(model, tokenizer, questions, cfg.batch_size, cfg.max_new_tokens,
                                              progress=progress)]
    result: dict = {"groups": {}, "earlier": {}, "examples": {}}
    at = 0
    for name, probes in groups.items():
        chunk = texts[at:at + len(probes)]
        at += len(probes)
        accuracy = probe_accuracy(chunk, [p.answer for p in probes], [p.aliases for p in probes], cfg.rouge_threshold)
        result["groups"][name] = {"n": len(probes), "accuracy": accuracy.value}
        result["examples"][name] = [{"question": p.question, "generation": t, "correct": bool(c)}
                                    for p, t, c in zip(probes, chunk, accuracy.per_example, strict=True)]
    for request_id, sealed in earlier.items():
        chunk = texts[at:at + len(sealed)]
        at += len(sealed)
        hits = [sealed_correct(t, s, salt) for t, s in zip(chunk, sealed, strict=True)]
        result["earlier"][request_id] = sum(hits) / len(hits) if hits else 0.0
    return result


def _check(name: str, value: float, threshold: float, at_most: bool, fails_to: str, description: str) -> dict:
    return check(name, round(value, 6), round(threshold, 6), at_most, description, fails_to=fails_to)


def verify(after: dict, baseline: dict, earlier_then: dict[str, float], cfg: SequenceConfig) -> dict:
    """The three checks on `after` (an `evaluate_sequence_probes` result), given the utility `baseline`
    (accuracy per group before the first request) and each earlier request's forget accuracy when it was
    applied. Returns {'status': 'applied' | 'rolled_back' | 'rejected', 'reason', 'checks'}."""
    checks = []
    for group in FORGET_GROUPS:
        if group in after["groups"]:
            checks.append(_check(f"forgotten: {group}", after["groups"][group]["accuracy"], cfg.max_forget_accuracy,
                                 True, "rolled_back", "share of the request's probes still answered"))
    for request_id, now in after["earlier"].items():
        limit = max(earlier_then.get(request_id, 0.0), cfg.max_forget_accuracy) + cfg.relapse_tolerance
        checks.append(_check(f"no relapse: {request_id}", now, limit, True, "rolled_back",
                             "an earlier request's sealed probes answered now, against then"))
    for group in UTILITY_GROUPS:
        if group in after["groups"] and group in baseline:
            checks.append(_check(f"utility kept: {group}", after["groups"][group]["accuracy"],
                                 (1.0 - cfg.utility_tolerance) * baseline[group], False, "rejected",
                                 "accuracy against the model's before the first request"))
    failed = [c for c in checks if not c["passed"]]
    if any(c["fails_to"] == "rejected" for c in failed):
        status = "rejected"
    elif failed:
        status = "rolled_back"
    else:
        status = "applied"
    reason = failed_line(checks)
    return {"status": status, "reason": reason, "checks": checks}
