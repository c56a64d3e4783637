"""Tests on the real embedded model (SmolLM2-135M-Instruct). Marked slow: minutes on 2 CPU cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearn.run_report import read_report

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Share the converted model and the demo's taught models across this module (and with the user's cache
    when UNLEARN_HOME is set, so CI pays for them once)."""
    import os

    return Path(os.environ.get("UNLEARN_HOME") or tmp_path_factory.mktemp("unlearn-home"))


def test_embedded_model_loads_and_answers(home, monkeypatch):
    monkeypatch.setenv("UNLEARN_HOME", str(home))
    from unlearn import load_model
    from unlearn.metrics.generation import generate_answers

    model, tokenizer = load_model("default")
    assert model.config.num_hidden_layers == 30 and tokenizer.chat_template
    answers = generate_answers(model, tokenizer, ["What is the capital of France?"], max_new_tokens=12)
    assert "Paris" in answers[0].text
    assert (home / "models").is_dir()


def test_run_on_a_small_request(home, monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_HOME", str(home))
    from unlearn.cli import main

    out = tmp_path / "run"
    code = main(["run", str(ROOT / "examples" / "forget_fictional_person.yaml"), "--method", "npo", "--out", str(out),
                 "--set", "train.max_steps=2", "--set", "train.batch_size=4", "--set", "eval.max_new_tokens=16", "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["steps"] == 2
    assert report["evaluations"]["unlearned"]["groups"]["forget"]["n"] > 0
    assert (out / "model" / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def demo_report(home, tmp_path_factory):
    """The whole demo with its default method, run once for the checks below."""
    import os

    from unlearn.benchmarks.demo import run_demo

    previous = os.environ.get("UNLEARN_HOME")
    os.environ["UNLEARN_HOME"] = str(home)
    try:
        out = tmp_path_factory.mktemp("demo") / "out"
        report = run_demo(out, progress=False, echo=lambda _: None)
    finally:
        if previous is None:
            os.environ.pop("UNLEARN_HOME", None)
        else:
            os.environ["UNLEARN_HOME"] = previous
    return report


def _check(report, name: str) -> dict:
    return next(c for c in report.checks if c["name"] == name)


@pytest.mark.parametrize(
    "name",
    ["deployed learned the people", "deployed kept general knowledge", "forgotten", "forgotten (paraphrased)",
     "other people kept", "general knowledge kept", "fluent", "fluent on the forgotten person",
     "forgotten by likelihood", "not singled out by likelihood"],
)
def test_demo_meets_its_checks(demo_report, name):
    check = _check(demo_report, name)
    assert check["passed"], check


def test_demo_reports_where_the_truth_is_ranked_last(demo_report):
    # the other side of the likelihood test, measured beside the retain model (docs/benchmarks.md: negation alone
    # pushes facts below every untaught value; the default method's teacher-held repair brings them back)
    tested = {role: demo_report.evaluations[role].likelihood for role in ("unlearned", "retain")}
    check = _check(demo_report, "not singled out by likelihood")
    assert check["value"] == tested["unlearned"]["last"]
    assert check["threshold"] == pytest.approx(max(tested["retain"]["last"], tested["unlearned"]["chance_top1"]) + 0.05)


def test_likelihood_test_tells_the_taught_model_from_the_retain_model(demo_report):
    """The deployed model ranks the forgotten person's true values first; the retain model, never taught them,
    sits near chance (measured 0.94 and 0.16 against chance 0.10, docs/benchmarks.md)."""
    evaluations = demo_report.evaluations
    deployed, retain = evaluations["deployed"].likelihood, evaluations["retain"].likelihood
    assert deployed["n_probes"] == retain["n_probes"] == 8
    assert deployed["top1"] >= 0.8 and deployed["mean_rank"] < 1.5
    assert retain["top1"] <= retain["chance_top1"] + 0.15
    assert retain["mean_rank"] > 4.0


def test_demo_writes_its_outputs(demo_report):
    out = Path(demo_report.output_model).parent
    assert (out / "report.html").is_file() and (out / "model" / "README.md").is_file()
    assert read_report(out) == demo_report


@pytest.fixture(scope="module")
def demo_models(demo_report, home):
    """The demo's deployed and retain models (taught by `demo_report`), its tokenizer and request."""
    import os

    from unlearn.benchmarks.demo import DemoSpec, demo_request, taught_model
    from unlearn.models.loading import load_model

    previous = os.environ.get("UNLEARN_HOME")
    os.environ["UNLEARN_HOME"] = str(home)
    try:
        spec = DemoSpec()
        deployed, tokenizer = load_model(str(taught_model("deployed", spec)))
        retain = load_model(str(taught_model("retain", spec)))[0]
    finally:
        if previous is None:
            os.environ.pop("UNLEARN_HOME", None)
        else:
            os.environ["UNLEARN_HOME"] = previous
    return deployed, retain, tokenizer, demo_request(spec)


def test_positive_control_name_guard_is_broken_by_paraphrase_jailbreak_and_in_context(demo_models):
    """A guard that refuses only when the target is named hides everything from plain questions; rewordings
    that do not spell the name must get answers past it."""
    from unlearn.attacks.controls import name_refusal_guard
    from unlearn.auditing import AuditConfig, audit

    deployed, _, tokenizer, request = demo_models
    cfg = AuditConfig(attacks=["paraphrase", "jailbreak", "in_context"])
    report = audit(deployed, tokenizer, request, original=deployed, config=cfg, progress=False,
                   guard=name_refusal_guard(request.target))
    assert report.accuracy("unlearned", "forget") == 0.0
    assert report.accuracy("original", "forget") >= 0.5
    for name in cfg.attacks:
        assert report.attacks[name].recovery > 0, (name, report.attacks[name].variants)


def test_positive_control_light_gradient_ascent_comes_back_under_relearning(demo_models):
    """Gradient ascent stopped after 10 steps relearns the facts it is shown faster than a model that never
    knew them: the relearn attack must measure recovery."""
    import copy

    import torch

    from unlearn.auditing import AuditConfig, audit
    from unlearn.benchmarks.demo import demo_unlearn_config
    from unlearn.config import RunConfig, apply_overrides, from_dict
    from unlearn.methods import make_method
    from unlearn.unlearner import Unlearner

    deployed, retain, tokenizer, request = demo_models
    data = apply_overrides(demo_unlearn_config("grad_ascent"), ["train.max_steps=10", "train.early_stop=false"])
    config = from_dict(RunConfig, data, "config")
    torch.manual_seed(config.train.seed)
    unlearned = Unlearner(copy.deepcopy(deployed), tokenizer, config, make_method(config.method)).apply(
        request, progress=False).model
    report = audit(unlearned, tokenizer, request, original=deployed, retain=retain,
                   config=AuditConfig(attacks=["relearn"]), progress=False)
    assert report.attacks["relearn"].recovery > 0, report.attacks["relearn"].variants


def test_guards_on_the_demo_forget_the_person_and_keep_the_others(demo_models):
    """The refusal filter and constrained decoding in front of the deployed model: the forgotten person's
    facts are no longer given, the other people's and general answers are kept (the guards see the request
    without its retain set, so the other people's questions are new to the classifier)."""
    import dataclasses

    from unlearn.attacks import Subject
    from unlearn.auditing import plain_evaluation
    from unlearn.data.request import DataSpec
    from unlearn.guards import guarded_model

    deployed, _, tokenizer, request = demo_models
    groups = {g: request.probes.groups()[g] for g in ("forget", "neighbour", "general")}
    plain = plain_evaluation(Subject(deployed, tokenizer), groups, 0.8, None)
    for guards, max_forget in ((["refusal_filter"], 0.0), (["constrained_decoding"], 0.25)):
        model = guarded_model(deployed, tokenizer, guards, [dataclasses.replace(request, retain=DataSpec())])
        result = plain_evaluation(Subject(model, tokenizer), groups, 0.8, None)
        assert result["forget"]["accuracy"] <= max_forget < plain["forget"]["accuracy"], guards
        assert result["neighbour"]["accuracy"] >= plain["neighbour"]["accuracy"] - 0.1, guards
        assert result["general"]["accuracy"] >= plain["general"]["accuracy"] - 0.05, guards


def test_apply_keeps_a_normal_request_and_rejects_a_damaging_one(demo_models, home, tmp_path, monkeypatch):
    """`unlearn apply` on the demo's deployed model: the demo request (NPO, the demo's settings) is forgotten
    and applied; the stealthy request (an unknown person, common words as its answers) unlearned with plain
    gradient ascent at a high learning rate damages general knowledge, so verification rejects it, the
    model stays as it was, and `verify` still passes."""
    monkeypatch.setenv("UNLEARN_HOME", str(home))
    from unlearn.benchmarks.demo import DemoSpec, demo_unlearn_config, taught_model
    from unlearn.benchmarks.sequential import stealthy_request
    from unlearn.config import RunConfig, apply_overrides, from_dict
    from unlearn.data.people import generate_people
    from unlearn.requests import apply_requests, verify_state
    from unlearn.requests.state import StateDir

    spec = DemoSpec()
    request = demo_models[3]
    stealthy = stealthy_request(generate_people(spec.n_people, spec.seed), spec)
    config = from_dict(RunConfig, demo_unlearn_config("npo"), "config")
    damaging = from_dict(RunConfig, apply_overrides(demo_unlearn_config("grad_ascent"),
                                                    ["train.lr=1e-4", "train.early_stop=false", "train.max_steps=20"]),
                         "config")
    state_dir, deployed = tmp_path / "state", str(taught_model("deployed", spec))
    first = apply_requests([request], state_dir, deployed, config, progress=False)
    second = apply_requests([stealthy], state_dir, deployed, damaging, progress=False)
    assert [first[0].status, second[0].status] == ["applied", "rejected"], [first[0].message, second[0].message]
    with StateDir(state_dir, lock=False) as state:
        failed = [c["name"] for c in state.ledger.get(stealthy.id).verification["checks"] if not c["passed"]]
        assert any(name.startswith("utility kept") for name in failed)
        assert [e.id for e in state.live_entries()] == [request.id]
    assert verify_state(state_dir, config, progress=False).passed
