"""Audit: attack an unlearning result and report the worst case.

The audit asks the request's probes plainly of the unlearned model, of the original model (before
unlearning) and of a retain model (never taught the forget data) when given, then runs every selected
attack on the unlearned model (and on the retain model, for a floor). Per attack a, over the forget probes
S_a that the attack asked (k_i = whether probe i's answer leaks, by the attacks' judge, or the share of samples
that leak it), probe by probe:

    recovery_a = clip( sum_i max(0, k_i^attacked - max(k_i^unlearned, k_i^retain attacked))
                       / sum_i max(0, k_i^original - k_i^unlearned), 0, 1 )

the share of what unlearning removed that the attack brings back, beyond what a model that never knew the
facts gives under the same attack. Counting per probe, a fact brought back is never cancelled by another
that the attack happened to lose. Without an original model k^original = 1 (it is assumed to have known
every probe); when the removed share (the denominator over |S_a|) is below `min_removed`, nothing measurable
was removed and the recovery is undefined (None). An attack with several variants (templates, step budgets,
sample counts) also gets the variant `any variant`: per probe the most any variant brought back, as an
attacker who tries them all sees it. The headline is the worst (largest) recovery over attacks; the verdict
passes when it is at most `max_recovery`, the plain forget knowledge is at most `max_forget_knowledge`, and
every attack measured a recovery. A failing attack is recorded with its error and the audit goes on. An
attack that failed, asked nothing of this request (it is then 'skipped': e.g. in-context reintroduction on a
request without QA pairs) or measured no recovery (nothing removed of what it asks, or relearning with no
held-out probe and no retain model) makes the verdict 'incomplete' rather than 'pass'.

The reference models' part of an audit (their plain answers, likelihood tests and, for the retain model, every
attack's floor) depends only on their weights, the request and the settings, so it is kept under
$UNLEARN_HOME/audit/references/, keyed by a hash of all of them (every weight value included): auditing the next
method on the same request attacks only the audited model (a reference that is the audited model itself is
computed afresh). Values computed on another machine or thread count may differ at float-rounding level.
`cache_references=false` recomputes everything. Likewise the audited model's own greedy answers and likelihood
test are taken from the evaluation of the run that made it (`evaluated`, with the audit's answer length; the
replies are judged again by the audit's judge) instead of being asked again.

When the forget probes have distractors (listed, or from the request's generator), the audit also runs the
likelihood knowledge test (metrics/knowledge.py) on each model's weights, and on the weights after the
relearning attack: the verdict then also needs the likelihood top-1 within `likelihood_margin` of the retain
model's (of chance without a retain model), plainly and after relearning.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .attacks import DEFAULT_ATTACKS, AttackOutcome, AuditContext, Subject, make_attack
from .attacks.base import user
from .audit_report import (
    SCHEMA,
    AttackResult,
    AuditHeadline,
    AuditReport,
    audit_summary_text,
    read_audit,
    write_audit,
)
from .data.request import ForgetRequest, Probe
from .errors import ConfigError
from .io import atomic_write_json
from .metrics.checks import check, passes
from .metrics.judge import JUDGE_VERSION, ROUGE_THRESHOLD, answered
from .metrics.probes import ask_groups
from .models.stored import StoredModel

__all__ = ["AuditConfig", "AuditReport", "AttackResult", "audit", "audit_config", "audit_summary_text", "read_audit",
           "reusable_evaluation", "write_audit", "recovery"]


@dataclass
class AuditConfig:
    """Which attacks, their settings ({attack: {setting: value}}), the judge and the pass/fail thresholds."""

    attacks: list[str] = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_recovery: float = 0.25
    max_forget_knowledge: float = 0.25
    min_removed: float = 0.1
    rouge_threshold: float = ROUGE_THRESHOLD  # the judge (metrics/judge.py), as in EvalConfig
    batch_size: int = 16  # texts per scored batch (the likelihood tests)
    generation_batch_size: int = 64  # prompts per generation batch (sequences, when sampling)
    max_new_tokens: int = 32
    attack_retain: bool = True  # also attack the retain model (when given) for the floor
    likelihood_margin: float = 0.05  # likelihood top-1 may exceed the retain model's (or chance) by this much
    cache_references: bool = True  # keep the original and retain models' answers and attacked floors (see below)
    stop_at_failure: bool = False  # the quick audit: no attack after the first one over max_recovery (`audit`)


def audit_config(attacks: Sequence[str] | None = None, overrides: Sequence[str] = ()) -> AuditConfig:
    """An AuditConfig from attack names and 'attack.setting=value' / 'field=value' overrides
    (e.g. relearn.steps=[5,10], leak_at_k.n=32, max_recovery=0.1); every name is checked."""
    import dataclasses

    from .attacks import ATTACKS
    from .config import from_dict, parse_override
    from .registry import did_you_mean

    chosen = list(attacks) if attacks else list(DEFAULT_ATTACKS)
    for name in chosen:
        ATTACKS.get(name)  # unknown names fail here, with the valid list
    fields = {f.name for f in dataclasses.fields(AuditConfig)} - {"attacks", "settings"}
    top: dict[str, Any] = {}
    settings: dict[str, dict[str, Any]] = {}
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) == 2 and keys[0] in ATTACKS:
            settings.setdefault(keys[0], {})[keys[1]] = value
        elif len(keys) == 1 and keys[0] in fields:
            top[keys[0]] = value
        else:
            hint = did_you_mean(keys[0] if keys else text, sorted(fields) + ATTACKS.names())
            raise ConfigError(f"--set {text}: use <attack>.<setting>=value or one of {', '.join(sorted(fields))}.{hint}")
    cfg = from_dict(AuditConfig, {**top, "attacks": chosen, "settings": settings}, "audit")
    for name in chosen:
        make_attack({"name": name, **settings.get(name, {})})  # misspelt settings fail before any model loads
    return cfg


def recovery(attacked: float, unlearned: float, original: float, floor: float | None = None,
             min_removed: float = 0.1) -> float | None:
    """Share of the removed knowledge an attack brings back (see the module docstring); None when unlearning
    removed less than `min_removed`."""
    removed = original - unlearned
    if removed <= 0 or removed < min_removed:
        return None
    base = max(unlearned, floor) if floor is not None else unlearned
    return min(1.0, max(0.0, (attacked - base) / removed))


def probe_recovery(attacked: Sequence[float], unlearned: Sequence[float], original: Sequence[float] | None,
                   floor: Sequence[float | None] | None = None, min_removed: float = 0.1) -> float | None:
    """`recovery` counted probe by probe (see the module docstring): the gains over max(unlearned, floor) per
    probe, over what unlearning removed per probe; None when the removed share is below `min_removed`."""
    n = len(attacked)
    orig = original if original is not None else [1.0] * n
    removed = sum(max(0.0, o - u) for o, u in zip(orig, unlearned, strict=True))
    if n == 0 or removed <= 0 or removed / n < min_removed:
        return None
    floors = floor if floor is not None else [None] * n
    gained = sum(max(0.0, a - max(u, f or 0.0)) for a, u, f in zip(attacked, unlearned, floors, strict=True))
    return min(1.0, gained / removed)


def mean_over(values: Sequence[float | None], indices: Sequence[int]) -> float:
    picked = [values[i] for i in indices]
    known = [v for v in picked if v is not None]
    return sum(known) / len(known) if known else float("nan")


def asked(per_probe: Sequence[float | None]) -> list[int]:
    return [i for i, v in enumerate(per_probe) if v is not None]


def plain_evaluation(subject: Subject, groups: dict[str, list[Probe]], rouge_threshold: float,
                     progress: str | None) -> dict[str, Any]:
    """Greedy replies to every probe group in one batched pass; per probe whether the answer is given."""
    replies = ask_groups(lambda questions: subject.respond([user(q) for q in questions], progress=progress),
                         {name: [p.question for p in probes] for name, probes in groups.items()})
    return {name: judged_group(probes, replies[name], rouge_threshold) for name, probes in groups.items()}


def judged_group(probes: Sequence[Probe], replies: Sequence[str], rouge_threshold: float) -> dict[str, Any]:
    """One probe group's replies judged: accuracy, whether each probe was answered, and the examples."""
    hits = [float(answered(r, p.answers, rouge_threshold)) for p, r in zip(probes, replies, strict=True)]
    return {"n": len(probes), "accuracy": sum(hits) / len(hits) if hits else float("nan"), "per_probe": hits,
            "examples": [{"question": p.question, "answer": p.answer, "reply": r, "correct": bool(h)}
                         for p, r, h in zip(probes, replies, hits, strict=True)]}


def plain_from_evaluation(evaluation, groups: dict[str, list[Probe]], rouge_threshold: float) -> dict[str, Any] | None:
    """`plain_evaluation`'s result from a run's evaluation of the same model (a `RequestEvaluation`): its greedy
    replies judged by the audit's judge. None when a group is missing or asked other questions."""
    out: dict[str, Any] = {}
    for name, probes in groups.items():
        group = evaluation.groups.get(name)
        if group is None or [e["question"] for e in group.examples] != [p.question for p in probes]:
            return None
        out[name] = judged_group(probes, [e["generation"] for e in group.examples], rouge_threshold)
    return out


def reusable_evaluation(run_report, cfg: AuditConfig):
    """The unlearned model's evaluation in a run report (`RunReport`), when its answers were generated as the audit
    generates them (the same answer length); otherwise None, and the audit asks again."""
    evaluation = run_report.evaluations.get("unlearned")
    if evaluation is None or run_report.config.get("eval", {}).get("max_new_tokens") != cfg.max_new_tokens:
        return None
    return evaluation


def audit_groups(request: ForgetRequest) -> dict[str, list[Probe]]:
    if not request.probes.forget:
        raise ConfigError(f"request '{request.id}' has no forget probes: the audit asks them; add probes.forget")
    return request.probes.groups()


# bump when what an attack or the plain evaluation computes changes (2: own sampler; 3: the judge reads numbers,
# accents and unspaced scripts, relearning holds a probe out, context facts checked as shown, names with suffixes;
# 4: the judge's ROUGE counts words of every script; a work or topic is not named by its last word;
# 5: the likelihood test also reports how often the truth is ranked last)
REFERENCE_CACHE_VERSION = "5"


class ReferenceCache:
    """What an audit computes on a reference model (original or retain) that does not depend on the audited
    model, in one JSON file per (weights, request, judge settings); attack entries keyed by their settings."""

    def __init__(self, model, tokenizer, request: ForgetRequest, cfg: AuditConfig, enabled: bool = True):
        self.path = None
        self.data: dict[str, Any] = {"attacks": {}}
        if not enabled:
            return
        from .io import sha256_json, unlearn_home
        from .models.loading import weights_digest

        weights = f"files:{model.digest()}" if isinstance(model, StoredModel) else weights_digest(model, None)
        key = sha256_json({"v": REFERENCE_CACHE_VERSION, "schema": SCHEMA, "weights": weights,
                           "tokenizer": getattr(tokenizer, "name_or_path", ""), "vocab": len(tokenizer),
                           "request": request.to_dict(), "judge": [JUDGE_VERSION, cfg.rouge_threshold, cfg.batch_size,
                                                                   cfg.generation_batch_size, cfg.max_new_tokens]})
        self.path = unlearn_home() / "audit" / "references" / f"{key[:24]}.json"
        if self.path.is_file():
            import json

            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, ValueError):  # a damaged cache file is recomputed, never trusted
                self.data = {"attacks": {}}

    def get(self, name: str):
        return self.data.get(name)

    def put(self, name: str, value) -> None:
        self.data[name] = value
        self._save()

    @staticmethod
    def attack_key(name: str, attack) -> str:
        """The attack's name and settings, the content of any file a setting names (relearning's data), and what
        it does differently on this machine (the quantization schemes that run here)."""
        from pathlib import Path

        from .io import file_sha256, sha256_json

        settings = _settings(attack)
        files = {k: file_sha256(v) for k, v in settings.items() if isinstance(v, str) and v and Path(v).is_file()}
        here = attack.machine_dependent() if attack is not None else {}
        return sha256_json({"name": name, "settings": settings, "files": files, **({"here": here} if here else {})})[:16]

    def attack(self, key: str) -> tuple[AttackOutcome | None, str | None, float] | None:
        entry = self.data["attacks"].get(key)
        if entry is None:
            return None
        outcome = None
        if entry["outcome"] is not None:
            outcome = AttackOutcome(**{**entry["outcome"], "needs_floor": set(entry["outcome"]["needs_floor"])})
        return outcome, entry["error"], 0.0

    def put_attack(self, key: str, outcome: AttackOutcome | None, error: str | None, seconds: float) -> None:
        import dataclasses

        if outcome is None:  # a failure (out of memory, an interrupted download) is tried again next time
            return
        stored = None if outcome is None else {**dataclasses.asdict(outcome), "needs_floor": sorted(outcome.needs_floor)}
        self.data["attacks"][key] = {"outcome": stored, "error": error, "seconds": seconds}
        self._save()

    def _save(self) -> None:
        if self.path is not None:
            atomic_write_json(self.path, self.data)


def run_attack(attack, subject: Subject, ctx: AuditContext) -> tuple[AttackOutcome | None, str | None, float]:
    start = time.perf_counter()
    try:
        return attack.run(subject, ctx), None, time.perf_counter() - start
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failing attack is reported; the others still run
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return None, detail, time.perf_counter() - start


ANY_VARIANT = "any variant"


def attack_summary(name: str, attack, outcome: AttackOutcome | None, error: str | None, seconds: float,
                   plain: dict[str, list[float]], retain_outcome: AttackOutcome | None,
                   cfg: AuditConfig) -> AttackResult:
    """Knowledge, recovery (per variant and worst case) and examples of one attack."""
    entry: dict[str, Any] = {"kind": attack.kind if attack else None, "seconds": seconds,
                             "settings": _settings(attack)}
    if outcome is None:
        return AttackResult("failed", **entry, error=error or "unknown error")
    unlearned, original = plain["unlearned"], plain.get("original")
    retain_variants = retain_outcome.per_variant if retain_outcome else {}

    def measure(per_probe: Sequence[float | None], floor_per_probe: Sequence[float | None] | None) -> dict:
        idx = asked(per_probe)
        if not idx:
            return {"n": 0, "knowledge": None, "recovery": None}
        k_unl = mean_over(unlearned, idx)
        k_orig = mean_over(original, idx) if original else 1.0
        floor = mean_over(floor_per_probe, idx) if floor_per_probe else None
        floor = None if floor is not None and floor != floor else floor  # NaN: the retain attack asked none
        floors = [floor_per_probe[i] for i in idx] if floor is not None else None
        found = probe_recovery([per_probe[i] for i in idx], [unlearned[i] for i in idx],
                               [original[i] for i in idx] if original else None, floors, cfg.min_removed)
        return {"n": len(idx), "knowledge": mean_over(per_probe, idx), "unlearned": k_unl, "original": k_orig,
                "retain_attacked": floor, "recovery": found}

    columns = dict(outcome.per_variant)
    variants = {v: measure(col, retain_variants.get(v)) for v, col in columns.items()}
    for v in outcome.needs_floor & set(variants):
        if variants[v]["retain_attacked"] is None:
            variants[v]["recovery"] = None  # without a never-taught model to compare with, it means nothing
    if not any(m["n"] for m in variants.values()):
        return AttackResult("skipped", **entry, reason=f"{name} asked no forget probe of this request"
                            + (f" ({'; '.join(outcome.notes)})" if outcome.notes else "")
                            + "; leave it out of --attacks, or give the request what it needs")
    usable = [v for v, m in variants.items() if m["recovery"] is not None]
    if not all(v in retain_variants for v in usable):  # no floor for the union: only variants that need none
        usable = [v for v in usable if v not in outcome.needs_floor]
    if len(usable) > 1:  # an attacker who tries every variant: per probe the most any of them brought back
        union = AttackOutcome({v: columns[v] for v in usable}).per_probe()
        union_floor = AttackOutcome({v: retain_variants[v] for v in usable}).per_probe() \
            if all(v in retain_variants for v in usable) else None
        columns[ANY_VARIANT] = union
        variants[ANY_VARIANT] = measure(union, union_floor)
    worst = max((v["recovery"] for v in variants.values() if v["recovery"] is not None), default=None)
    recovering = [columns[v] for v, m in variants.items() if m["recovery"]]
    recovered = sorted({i for column in recovering for i in asked(column) if column[i] and not unlearned[i]})
    if worst is None:
        outcome.notes.append("no recovery measured: unlearning removed too little of what this attack asks "
                             f"(less than min_removed {cfg.min_removed}), or its variants need a retain model")
    return AttackResult(
        "ok", **entry,
        recovery=worst,
        knowledge=max((v["knowledge"] for v in variants.values() if v["knowledge"] is not None), default=None),
        variants=variants,
        recovered_probes=recovered,
        utility=outcome.utility,
        retain_utility=retain_outcome.utility if retain_outcome else {},
        curve=outcome.curve,
        retain_curve=retain_outcome.curve if retain_outcome else None,
        likelihood=outcome.likelihood,
        retain_likelihood=retain_outcome.likelihood if retain_outcome else {},
        notes=outcome.notes,
        examples=outcome.examples,
    )


def _settings(attack) -> dict:
    import dataclasses

    return dataclasses.asdict(attack) if attack is not None and dataclasses.is_dataclass(attack) else {}


def likelihood_checks(likelihood: dict[str, dict], attacks: dict[str, AttackResult], margin: float) -> list[dict]:
    """'forgotten by likelihood' and 'not singled out by likelihood' on the audited weights, and after each model
    attack that ran the test (beside the retain model under the same attack when there is one)."""
    from .metrics.knowledge import likelihood_checks as both_sides

    if "unlearned" not in likelihood:
        return []
    checks = both_sides(likelihood["unlearned"], likelihood.get("retain"), margin)
    for name, attack in attacks.items():
        for variant, tested in attack.likelihood.items():
            for after in both_sides(tested, attack.retain_likelihood.get(variant), margin):
                after["name"] = f"{after['name']} after {name} ({variant})"
                checks.append(after)
    return checks


def verdict_of(forget_accuracy: float, attacks: dict[str, AttackResult], likelihood: dict[str, dict],
               cfg: AuditConfig) -> tuple[str, list[dict]]:
    """'pass' / 'fail' / 'incomplete' (an attack failed and nothing else did) and the checks behind it, from the
    audited model's plain forget accuracy, the attacks' results and the likelihood tests."""
    headline = AuditHeadline.of(attacks)
    checks = [
        check("forgotten", forget_accuracy, cfg.max_forget_knowledge, True,
              "share of forget probes the unlearned model answers, asked plainly"),
        check("worst-case recovery", headline.worst_recovery, cfg.max_recovery, True,
              "largest share of the removed knowledge that any attack brings back", missing_passes=True),
    ]
    checks += likelihood_checks(likelihood, attacks, cfg.likelihood_margin)
    if not all(c["passed"] for c in checks):
        return "fail", checks
    unmeasured = [n for n, a in attacks.items() if a.ok and a.recovery is None]
    if headline.failed_attacks or headline.skipped_attacks or unmeasured:
        return "incomplete", checks  # a pass needs every attack to have run and measured what it brings back
    return "pass", checks


def audit(model, tokenizer, request: ForgetRequest, original=None, retain=None, config: AuditConfig | None = None,
          progress: bool = True, guard=None, names: dict[str, str] | None = None, evaluated=None) -> AuditReport:
    """Audit `model` (the unlearned one) on `request`; `original` / `retain` are models or `StoredModel`s (loaded
    only when a result is not in the reference cache), optional.
    `guard`: a prompt filter placed in front of the audited model (see attacks.base.Subject).
    Returns the report (an AuditReport; `.to_json()` is schema unlearn.audit/1); write it with `write_audit`.

    With `config.stop_at_failure` (the quick audit, `--quick`), no attack runs after the first one whose
    recovery exceeds `max_recovery` (relearning runs first): the verdict can then only be 'fail'. The attacks
    not run are reported as skipped and the worst case is a lower bound; a model that passes runs every
    attack, as in the full audit. Each attack's retain floor is then taken first, and an attack that asks in
    stages (relearning's step budgets) ends as soon as its recovery is 1.0, which nothing later can raise.

    `evaluated`: the run's evaluation of `model` (a `RequestEvaluation` from `evaluate_request`, answers of at most
    `config.max_new_tokens` tokens; see `reusable_evaluation`): its replies and likelihood test stand for the
    audited model's plain answers and plain likelihood test. Ignored behind a guard."""
    from tqdm.auto import tqdm

    from .data.distractors import with_distractors
    from .metrics.knowledge import likelihood_knowledge
    from .runner import now_iso

    cfg = config or AuditConfig()
    request = with_distractors(request)
    attacks = {}
    for name in cfg.attacks:
        attacks[name] = make_attack({"name": name, **cfg.settings.get(name, {})})
    unknown = set(cfg.settings) - set(cfg.attacks)
    if unknown:
        raise ConfigError(f"settings given for attacks that are not selected: {', '.join(sorted(unknown))}")
    groups = audit_groups(request)
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def subject_of(m, g=None) -> Subject:
        return Subject(m, tokenizer, cfg.generation_batch_size, cfg.max_new_tokens, g)

    references = {role: m for role, m in (("original", original), ("retain", retain)) if m is not None}
    roles = ["unlearned", *references]
    subjects = {"unlearned": subject_of(model, guard)}

    def subject(role: str) -> Subject:
        """The role's subject; a reference stored on disk (`StoredModel`) is loaded only when asked for."""
        if role not in subjects:
            m = references[role]
            subjects[role] = subject_of(m.load() if isinstance(m, StoredModel) else m)
        return subjects[role]

    caches = {role: ReferenceCache(m, tokenizer, request, cfg, cfg.cache_references)
              for role, m in references.items() if m is not model}
    reused: list[str] = []

    given: dict[str, Any] = {}
    if evaluated is not None and guard is None:
        from_run = plain_from_evaluation(evaluated, groups, cfg.rouge_threshold)
        if from_run is not None:
            given["plain"] = from_run
            if evaluated.likelihood is not None:
                given["likelihood"] = evaluated.likelihood

    def once(role: str, name: str, compute):
        """`compute()` for the audited model (unless the run evaluated it); for a reference model, from its cache
        when there."""
        if role == "unlearned" and name in given:
            reused.append(f"unlearned:{name} (the run's evaluation)")
            return given[name]
        cache = caches.get(role)
        if cache is not None and cache.get(name) is not None:
            reused.append(f"{role}:{name}")
            return cache.get(name)
        value = compute()
        if cache is not None:
            cache.put(name, value)
        return value

    plain: dict[str, dict] = {}
    for role in roles:
        t = time.perf_counter()
        plain[role] = once(role, "plain", lambda role=role: plain_evaluation(
            subject(role), groups, cfg.rouge_threshold, f"asking the {role} model" if progress else None))
        timings[f"plain_{role}_s"] = time.perf_counter() - t
    likelihood: dict[str, dict] = {}
    if any(p.distractors for p in request.probes.forget):
        for role in roles:  # on the weights: a guard does not change what they know
            t = time.perf_counter()
            likelihood[role] = once(role, "likelihood", lambda role=role: likelihood_knowledge(
                subject(role).weights, tokenizer, request.probes.forget, request.forget.qa, cfg.batch_size,
                progress=f"likelihood test, {role} model" if progress else None))
            timings[f"likelihood_{role}_s"] = time.perf_counter() - t
    keep = request.probes.neighbour or request.probes.general

    def context(role: str) -> AuditContext:
        replies = [e["reply"] for e in plain[role]["forget"]["examples"]]
        return AuditContext(request, list(request.probes.forget), replies, list(keep), cfg.rouge_threshold, progress)

    forget_plain = {role: plain[role]["forget"]["per_probe"] for role in plain}
    results: dict[str, AttackResult] = {}
    stopped: str | None = None

    def floor_of(name: str, attack) -> tuple[AttackOutcome | None, str | None, float]:
        """The retain model under the attack: from its cache, else run (and cached)."""
        cache, key = caches.get("retain"), ReferenceCache.attack_key(name, attack)
        cached = cache.attack(key) if cache is not None else None
        if cached is not None:
            reused.append(f"retain:{name}")
            return cached
        found = run_attack(attack, subject("retain"), context("retain"))
        if cache is not None:
            cache.put_attack(key, *found)
        return found

    floors = "retain" in references and cfg.attack_retain
    bar = tqdm(attacks.items(), desc="attacks", disable=not progress, leave=False)
    for name, attack in bar:
        if stopped:
            results[name] = AttackResult("skipped", attack.kind, 0.0, _settings(attack), reason=stopped)
            continue
        bar.set_postfix_str(name)
        ctx = context("unlearned")
        floor: tuple[AttackOutcome | None, str | None, float] | None = None
        if cfg.stop_at_failure:  # the floor first, so that the attack can end once it can bring back no more
            floor = floor_of(name, attack) if floors else (None, None, 0.0)
            ctx.enough = lambda partial, name=name, attack=attack, retain=floor[0]: (attack_summary(
                name, attack, partial, None, 0.0, forget_plain, retain, cfg).recovery or 0.0) >= 1.0
        outcome, error, seconds = run_attack(attack, subject("unlearned"), ctx)
        retain_outcome = None
        if outcome is not None and floors:
            retain_outcome, retain_error, retain_seconds = floor if floor is not None else floor_of(name, attack)
            seconds += retain_seconds
            if retain_error:
                outcome.notes.append(f"the attack failed on the retain model ({retain_error}); no floor")
        results[name] = attack_summary(name, attack, outcome, error, seconds, forget_plain, retain_outcome, cfg)
        found = results[name].recovery
        if cfg.stop_at_failure and found is not None and not passes(found, cfg.max_recovery, at_most=True):
            stopped = f"stopped early: {name} brought back {found:.2f} (> max_recovery {cfg.max_recovery})"
    bar.close()
    timings["total_s"] = time.perf_counter() - start

    verdict, checks = verdict_of(plain["unlearned"]["forget"]["accuracy"], results, likelihood, cfg)
    return AuditReport(
        created=now_iso(), title=f"Audit: {request.target}", request=request.summary(), roles=roles,
        config=_config_dict(cfg), plain=plain, attacks=results, headline=AuditHeadline.of(results),
        verdict=verdict, checks=checks, models=names or {}, guarded=guard is not None, likelihood=likelihood,
        forget_probes=[{"question": p.question, "answer": p.answer} for p in request.probes.forget],
        timings=timings, reused_reference_results=reused)


def _config_dict(cfg: AuditConfig) -> dict:
    from .config import to_dict

    return to_dict(cfg)
