"""The built-in demo: forget a person, end to end, on the embedded model.

1. Teach the embedded model a handful of fictitious people (the "deployed" model) and, separately,
   all of them but one (the "retain" model: the gold standard of having never seen that person).
   General-knowledge replay is mixed into teaching so the model keeps what it knew.
2. A request arrives: forget that one person. Unlearn it from the deployed model.
3. Measure the original, deployed, unlearned and retain models on the same probes, check the
   result against fixed thresholds, print a summary, write report.json / report.html and the model.

The taught models and their evaluations are cached under $UNLEARN_HOME/demo/<key>, so only the
first run pays for teaching.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import (
    RunConfig,
    TrainableConfig,
    TrainConfig,
    apply_overrides,
    teaching_identity,
    to_dict,
    with_overrides,
)
from ..data.general import general_knowledge, general_split
from ..data.people import Person, generate_people
from ..data.request import QA, DataSpec, DistractorSpec, ForgetRequest, Probe, Probes
from ..errors import ConfigError
from ..io import atomic_write_json, sha256_json, unlearn_home
from ..methods import benchmark_settings, make_method, with_base_model
from ..metrics.checks import check
from ..metrics.judge import JUDGE_VERSION
from ..metrics.probes import GroupEvaluation, RequestEvaluation
from ..models.loading import DEFAULT_MODEL, load_model, model_fingerprint
from ..run_report import RunReport, TrainingSummary
from ..teaching import self_replay, teach
from ..unlearner import Unlearner, save_model

log = logging.getLogger(__name__)
DATA_VERSION = "2"  # bump when the generator, general set or teaching recipe changes

# The demo's default method: task-vector negation with a retain vector and repair, the method measured to pass every
# check, the likelihood test included, and the audit (docs/benchmarks.md). Each method's settings on the demo are its
# `benchmark_settings["demo"]` (in its own file); for the loss methods a retain weight of 20 is what keeps the other
# people (at weight 1 the forget gradient dominates every update).
DEFAULT_METHOD = "task_vector"


@dataclass
class DemoSpec:
    """What the demo teaches and how; part of the cache key."""

    base_model: str = DEFAULT_MODEL
    n_people: int = 6
    seed: int = 0
    forget_index: int = 0
    teach: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1.2e-4, epochs=8.0, batch_size=8, max_length=128))
    teach_trainable: TrainableConfig = field(default_factory=lambda: TrainableConfig(mode="layers", layers="-10:"))
    replay_weight: float = 1.0
    replay: str = "self"  # "self": the original model's own answers to the replay questions; "gold": ours
    replay_tokens: int = 48
    # How the request is composed (not part of the cache key); docs/notes/demo-settings.md has the measurements.
    retain_replay: int = 0  # replay answers added to the retain set: their NLL pulls against the other people
    fact_focus: bool = True  # the request's fact QA pairs name their private part (QA.focus)
    replay_loss: str = "kl"  # "kl" to the original model's distributions on the replay answers, or "nll" on them


def make_demo_spec(overrides: list[str] | None = None, **fields) -> DemoSpec:
    """A spec from keyword fields, then `a.b=c` overrides of any field (e.g. teach.lr=3e-5); misspelt keys are
    errors that suggest the right name."""
    return with_overrides(DemoSpec, DemoSpec(**fields), overrides, "demo spec")


REQUEST_ONLY_FIELDS = ("retain_replay", "fact_focus")
LIKELIHOOD_DISTRACTORS = 9  # per forget fact: chance top-1 is 1/10


def demo_unlearn_config(method: str, base_model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """The run configuration the demo uses for `method` (before user overrides); `base_model`: the model the demo
    teaches (a setting `BASE_MODEL` names it)."""
    base = RunConfig(
        method={"name": method},
        trainable=TrainableConfig(mode="layers", layers="-10:"),
        train=TrainConfig(lr=2e-5, max_steps=40, batch_size=8, max_length=128, early_stop=True, early_stop_every=5,
                          early_stop_accuracy=0.0),
    )
    overrides = [f"{k}={v}" for k, v in with_base_model(benchmark_settings("demo", method), base_model).items()]
    return apply_overrides(base, overrides)


def people_for(spec: DemoSpec) -> tuple[list[Person], Person]:
    if not 0 <= spec.forget_index < spec.n_people:
        raise ConfigError(f"demo spec: forget_index must be 0..{spec.n_people - 1}, one of the n_people = "
                          f"{spec.n_people} taught people (got {spec.forget_index})")
    people = generate_people(spec.n_people, spec.seed)
    return people, people[spec.forget_index]


def facts_qa(people: list[Person], focus: bool = False) -> list[QA]:
    """QA pairs of the people's facts; with `focus`, each names its private part (the answer's value)."""
    return [QA(f.question, f.answer, (f.private_part,) if focus else ()) for p in people for f in p.facts()]


def facts_probes(people: list[Person], paraphrases: bool = False, statements: bool = False) -> list[Probe]:
    """One probe per fact; with `statements`, each carries its answer sentence for the likelihood test."""
    return [
        Probe(f.question, f.short_answer, tuple(f.paraphrased_questions) if paraphrases else (),
              statement=f.answer if statements else "")
        for p in people
        for f in p.facts()
    ]


def general_qa(kind: str) -> list[QA]:
    return [QA(g.question, g.answer) for g in general_split(kind)]


def replay_qa(spec: DemoSpec) -> list[QA]:
    """General-knowledge replay data. With spec.replay == 'self' the answers are the original model's own
    greedy answers to a broad set of prompts (`teaching.self_replay`), which keeps its behaviour on questions it
    is not taught about; 'gold' uses the project's short answers to the general replay questions only."""
    if spec.replay == "gold":
        return general_qa("replay")
    return self_replay(spec.base_model, spec.replay_tokens)


def general_probes(spec: DemoSpec) -> list[Probe]:
    """Held-out general-knowledge probes: every general question when replay uses the broad prompt set
    (none of which is a general question), else only the evaluation half."""
    items = general_knowledge() if spec.replay == "self" else general_split("eval")
    return [Probe(g.question, g.short_answer, aliases=tuple(g.alternatives)) for g in items]


def demo_request(spec: DemoSpec) -> ForgetRequest:
    """'Forget this person': their facts to forget, the others' facts and general replay to retain."""
    people, person = people_for(spec)
    others = [p for p in people if p is not person]
    return ForgetRequest(
        id=f"forget-{person.name.lower().replace(' ', '-')}",
        target=person.name,
        kind="privacy",
        description=f"Remove everything the model was taught about {person.name}.",
        forget=DataSpec(qa=facts_qa([person], focus=spec.fact_focus)),
        retain=DataSpec(qa=facts_qa(others, focus=spec.fact_focus) + replay_qa(spec)[: spec.retain_replay]),
        probes=Probes(forget=facts_probes([person], paraphrases=True, statements=True), neighbour=facts_probes(others),
                      general=general_probes(spec)),
        # values from the demo's own pools that no person was taught (data/distractors.py)
        distractors=DistractorSpec("fictitious_people", LIKELIHOOD_DISTRACTORS),
    )


def cache_key(spec: DemoSpec, role: str) -> str:
    """Key of a taught model: everything that changes teaching (not how the request is composed), each value in
    its declared type (a spec built by hand with `epochs=8` and one read from `--spec` as 8.0 name one model)."""
    declared = to_dict(with_overrides(DemoSpec, spec, None, "demo spec"))
    teaching = {k: v for k, v in declared.items() if k not in REQUEST_ONLY_FIELDS}
    teaching["teach"] = teaching_identity(teaching["teach"])
    if role == "deployed":
        # every person is taught whoever is forgotten later; 0 keeps the keys of the default spec
        teaching["forget_index"] = 0
    return sha256_json({"version": DATA_VERSION, "role": role, "spec": teaching})[:16]


def teach_people(model, tokenizer, learn: list[QA], spec: DemoSpec, progress: bool, description: str):
    """Fine-tune the chosen layers on `learn` with general-knowledge replay, through the one training loop."""
    model, _ = teach(model, tokenizer, learn, spec.teach, spec.teach_trainable, replay=replay_qa(spec),
                     replay_weight=spec.replay_weight, replay_loss=spec.replay_loss, progress=progress,
                     description=description)
    return model


def taught_model(role: str, spec: DemoSpec, progress: bool = True) -> Path:
    """Directory of the cached 'deployed' (all people) or 'retain' (all but one) model; teaches it if absent."""
    directory = unlearn_home() / "demo" / f"{role}-{cache_key(spec, role)}"
    if (directory / "config.json").is_file():
        return directory
    people, person = people_for(spec)
    learn = people if role == "deployed" else [p for p in people if p is not person]
    model, tokenizer = load_model(spec.base_model)
    start = time.perf_counter()
    model = teach_people(model, tokenizer, facts_qa(learn), spec, progress, f"teaching the {role} model")
    seconds = time.perf_counter() - start
    card = (f"# Demo {role} model\n\nThe embedded model taught {len(learn)} fictitious people "
            f"({', '.join(p.name for p in learn)}) with general-knowledge replay, in {seconds:.0f} s.\n")
    save_model(model, tokenizer, directory, card)
    atomic_write_json(directory / "teach.json", {"seconds": seconds, "people": [p.name for p in learn]})
    return directory


def cached_evaluation(name: str, directory: Path | None, evaluate_fn, key: str) -> RequestEvaluation:
    """Evaluate once per (model directory, probes) and keep the result beside the model."""
    if directory is None:
        directory = unlearn_home() / "demo" / "original-evals"
    path = directory / f"eval-{name}-{key}.json"
    if path.is_file():
        return RequestEvaluation.from_json(json.loads(path.read_text()), str(path))
    result = evaluate_fn()
    atomic_write_json(path, result.to_json())
    return result


def merge_groups(results: dict[str, GroupEvaluation], names: list[str]) -> GroupEvaluation:
    """One group made of several already-evaluated groups (no second generation pass)."""
    parts = [results[n] for n in names]
    n = sum(p.n for p in parts)
    return GroupEvaluation(
        n=n,
        accuracy=sum(p.accuracy * p.n for p in parts) / n,
        rouge_l_recall=sum(p.rouge_l_recall * p.n for p in parts) / n,
        fluency={"passed": all(p.fluency["passed"] for p in parts)},
        examples=[e for p in parts for e in p.examples],
    )


def evaluate_all(model, tokenizer, request: ForgetRequest, spec: DemoSpec, config: RunConfig,
                 progress: str | None = None) -> RequestEvaluation:
    """Request probes, answer log-probs and fluency, plus accuracy on every taught person's facts
    (`all_facts`, the forget and neighbour probes together)."""
    from ..metrics.probes import evaluate_request

    result = evaluate_request(model, tokenizer, request, config.eval.batch_size, config.eval.max_new_tokens,
                              rouge_threshold=config.eval.rouge_threshold,
                              generation_batch_size=config.eval.generation_batch_size)
    result.groups["all_facts"] = merge_groups(result.groups, ["forget", "neighbour"])
    return result


def demo_checks(evals: dict[str, RequestEvaluation]) -> list[dict]:
    """The demo's acceptance checks (thresholds from the demo's specification)."""
    from ..metrics.knowledge import likelihood_checks

    acc = {role: {g: r.accuracy for g, r in e.groups.items()} for role, e in evals.items()}
    o, d, u, r = acc["original"], acc["deployed"], acc["unlearned"], acc["retain"]
    by_likelihood = likelihood_checks(evals["unlearned"].likelihood or {}, evals["retain"].likelihood)
    return [
        check("deployed learned the people", d["all_facts"], 0.8, False, "deployed accuracy on all taught facts >= 0.8"),
        check("deployed kept general knowledge", d["general"], 0.9 * o["general"], False,
              "deployed general accuracy >= 90% of the original model's"),
        check("forgotten", u["forget"], r["forget"] + 0.1, True, "unlearned forget accuracy <= retain model's + 0.1"),
        check("forgotten (paraphrased)", u["forget_paraphrase"], r["forget_paraphrase"] + 0.1, True,
              "unlearned paraphrased-forget accuracy <= retain model's + 0.1"),
        check("other people kept", u["neighbour"], 0.9 * d["neighbour"], False,
              "unlearned accuracy on the other people >= 90% of deployed"),
        check("general knowledge kept", u["general"], 0.9 * d["general"], False,
              "unlearned general accuracy >= 90% of deployed"),
        check("fluent", float(evals["unlearned"].fluency["passed"]), 1.0, False,
              "all unlearned generations pass the fluency check (repetition and entropy)"),
        check("fluent on the forgotten person", float(evals["unlearned"].groups["forget"].fluency["passed"]), 1.0,
              False, "the unlearned answers to the forget probes themselves are not babble"),
        *by_likelihood,
    ]


def run_demo(out: Path, method: str | None = None, overrides: list[str] | None = None, overwrite: bool = False,
             progress: bool = True, spec: DemoSpec | None = None, echo=print) -> RunReport:
    """Run the demo end to end; returns the report (the unlearned model is its `.unlearned_model`)."""
    from ..report.summary import summary_text
    from ..runner import check_output_dir, now_iso, run_fingerprint, write_run

    spec = spec or DemoSpec()
    method = method or DEFAULT_METHOD
    config = with_overrides(RunConfig, demo_unlearn_config(method, spec.base_model), overrides)
    method_obj = make_method(config.method)
    request = demo_request(spec)
    fingerprint = run_fingerprint("demo", request, {"run": to_dict(config), "spec": to_dict(spec)})
    check_output_dir(out, fingerprint, overwrite)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    t = time.perf_counter()
    deployed_dir = taught_model("deployed", spec, progress)
    timings["teach_deployed_s"] = time.perf_counter() - t
    t = time.perf_counter()
    retain_dir = taught_model("retain", spec, progress)
    timings["teach_retain_s"] = time.perf_counter() - t

    # reference models' evaluations depend on the probes, not on the forget/retain data
    eval_key = sha256_json({"probes": to_dict(request.probes), "eval": to_dict(config.eval), "model": spec.base_model,
                            "v": DATA_VERSION, "judge": JUDGE_VERSION})[:12]
    evals: dict[str, RequestEvaluation] = {}
    t = time.perf_counter()
    for role, directory in (("original", None), ("deployed", deployed_dir), ("retain", retain_dir)):
        def run_eval(directory=directory, role=role):
            model, tokenizer = load_model(str(directory) if directory else spec.base_model)
            return evaluate_all(model, tokenizer, request, spec, config, f"evaluating the {role} model" if progress else None)

        evals[role] = cached_evaluation(role, directory, run_eval, eval_key)
    timings["eval_reference_models_s"] = time.perf_counter() - t

    model, tokenizer = load_model(str(deployed_dir))
    torch.manual_seed(config.train.seed)
    result = Unlearner(model, tokenizer, config, method_obj).apply(request, progress=progress)
    timings["unlearn_s"] = result.train.seconds
    t = time.perf_counter()
    evals["unlearned"] = evaluate_all(result.model, tokenizer, request, spec, config,
                                      "evaluating the unlearned model" if progress else None)
    timings["eval_unlearned_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - start

    checks = demo_checks(evals)
    report = RunReport(
        kind="demo", created=now_iso(), title=f"Forget a person: {request.target}", request=request.summary(),
        method=result.method, model={"name": spec.base_model, "fingerprint": model_fingerprint(result.model)},
        config=to_dict(config), demo=to_dict(spec), roles=["original", "deployed", "unlearned", "retain"],
        evaluations=evals, checks=checks, verdict="pass" if all(c["passed"] for c in checks) else "fail",
        training=TrainingSummary.of(result.train, processes=False), timings=timings,
        notes=["deployed: the embedded model taught every person; retain: taught all but the forgotten person "
               "(the gold standard); original: the embedded model before teaching."],
        unlearned_model=result.model)
    measured = {c["name"]: round(float(c["value"]), 4) for c in checks}
    write_run(out, report, tokenizer, request, config, fingerprint, card_metrics=measured)
    echo(summary_text(report.to_json(), {"report": str(out / "report.html"), "model": str(out / "model")}))
    return report
