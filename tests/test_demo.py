"""The demo's pieces, and the whole demo path on a tiny model (the real-model run is a slow test)."""

from __future__ import annotations

import json

import pytest

from unlearn.benchmarks.demo import DemoSpec, demo_checks, demo_request, run_demo
from unlearn.config import TrainConfig
from unlearn.metrics.probes import GroupEvaluation, RequestEvaluation
from unlearn.run_report import read_report
from unlearn.teaching import complete_sentences


def test_demo_request_is_about_one_person():
    spec = DemoSpec(n_people=4, replay="gold")
    request = demo_request(spec)
    assert request.kind == "privacy" and len(request.forget.qa) == 8
    assert all(request.target in qa.question for qa in request.forget.qa)
    assert len(request.probes.forget) == 8 and all(len(p.paraphrases) == 2 for p in request.probes.forget)
    assert len(request.probes.neighbour) == 24 and not any(request.target in p.question for p in request.probes.neighbour)
    assert request.probes.general and request.retain.qa
    assert request.content_hash() == demo_request(spec).content_hash()


def test_taught_model_cache_key_ignores_settings_teaching_never_uses():
    """Teaching has no anchor data: the anchor settings must not change which cached model is used, while
    a setting teaching does use must; the deployed model is shared by every choice of the person to forget."""
    from unlearn.benchmarks.demo import cache_key

    base = cache_key(DemoSpec(), "deployed")
    assert cache_key(DemoSpec(teach=TrainConfig(lr=1.2e-4, epochs=8.0, batch_size=8, max_length=128, anchor_weight=7.0,
                                                anchor_batch_size=3)), "deployed") == base
    assert cache_key(DemoSpec(teach=TrainConfig(lr=1e-4, epochs=8, batch_size=8, max_length=128)), "deployed") != base
    # retain_similar is off by default (keys made before it existed stay); teaching with it on is another model
    assert cache_key(DemoSpec(teach=TrainConfig(lr=1.2e-4, epochs=8.0, batch_size=8, max_length=128, retain_similar=4)),
                     "deployed") != base
    assert cache_key(DemoSpec(), "retain") != base
    # the deployed model is taught every person, so which one is forgotten later does not change it
    assert cache_key(DemoSpec(forget_index=1), "deployed") == base
    assert cache_key(DemoSpec(forget_index=1), "retain") != cache_key(DemoSpec(), "retain")


def test_the_command_and_the_benchmark_scripts_share_the_cached_models():
    """`unlearn demo --spec ...` builds its spec through the overrides (which give every setting its declared type);
    the scripts build DemoSpec directly. Both must name the same cached models, or each re-teaches them."""
    from unlearn.benchmarks.demo import cache_key, make_demo_spec

    for role in ("deployed", "retain"):
        assert cache_key(make_demo_spec(["forget_index=1"], base_model="default"), role) == cache_key(
            DemoSpec(forget_index=1), role)
        assert cache_key(make_demo_spec(None, base_model="default"), role) == cache_key(DemoSpec(), role)
        assert cache_key(DemoSpec(teach=TrainConfig(lr=1.2e-4, epochs=8, batch_size=8, max_length=128)), role) == (
            cache_key(DemoSpec(), role))  # a whole number given for a float setting


def test_demo_spec_overrides_change_what_is_taught_and_refuse_misspelt_keys():
    from unlearn.benchmarks.demo import cache_key, make_demo_spec
    from unlearn.errors import ConfigError

    spec = make_demo_spec(["teach.lr=3e-5", "n_people=4"], base_model="some-model")
    assert (spec.teach.lr, spec.n_people, spec.base_model, spec.teach.epochs) == (3e-5, 4, "some-model", 8)
    assert cache_key(spec, "deployed") != cache_key(make_demo_spec(base_model="some-model"), "deployed")
    assert make_demo_spec() == DemoSpec()
    with pytest.raises(ConfigError, match="Did you mean 'lr'"):
        make_demo_spec(["teach.lrr=1"])


def test_a_person_to_forget_outside_the_taught_people_is_refused():
    from unlearn.benchmarks.demo import demo_request, make_demo_spec
    from unlearn.errors import ConfigError

    for index in ("6", "-1"):
        with pytest.raises(ConfigError, match="forget_index must be 0..5"):
            demo_request(make_demo_spec([f"forget_index={index}"]))
    assert demo_request(make_demo_spec(["forget_index=5"])).target != demo_request(DemoSpec()).target


def test_complete_sentences():
    assert complete_sentences("Paris is big. It has a riv") == "Paris is big."
    assert complete_sentences("No full stop here") == "No full stop here"
    assert complete_sentences("Done.") == "Done."


def _evals(u_forget: float, u_general: float, fluent: bool = True) -> dict[str, RequestEvaluation]:
    def ev(forget, para, neigh, general, facts, passed=True):
        groups = {"forget": forget, "forget_paraphrase": para, "neighbour": neigh, "general": general, "all_facts": facts}
        return RequestEvaluation({g: GroupEvaluation(1, a, 0.0, {"passed": passed}) for g, a in groups.items()}, {},
                                 {"passed": passed})

    return {
        "original": ev(0.0, 0.0, 0.0, 0.8, 0.0),
        "deployed": ev(1.0, 0.8, 1.0, 0.8, 1.0),
        "retain": ev(0.0, 0.0, 1.0, 0.8, 0.83),
        "unlearned": ev(u_forget, 0.05, 0.95, u_general, 0.8, fluent),
    }


def test_demo_checks_pass_and_fail_at_the_thresholds():
    assert all(c["passed"] for c in demo_checks(_evals(0.1, 0.72)))
    failed = {c["name"] for c in demo_checks(_evals(0.125, 0.70, fluent=False)) if not c["passed"]}
    assert failed == {"forgotten", "general knowledge kept", "fluent", "fluent on the forgotten person"}


def test_demo_checks_compare_likelihood_with_the_retain_model():
    evals = _evals(0.1, 0.72)
    evals["retain"].likelihood = {"top1": 0.125, "chance_top1": 0.1}
    evals["unlearned"].likelihood = {"top1": 0.2, "chance_top1": 0.1}
    check = demo_checks(evals)[-1]
    assert check["name"] == "forgotten by likelihood" and not check["passed"]
    assert check["threshold"] == pytest.approx(0.175)
    evals["unlearned"].likelihood["top1"] = 0.15
    assert demo_checks(evals)[-1]["passed"]
    evals["retain"].likelihood["last"] = 0.125
    evals["unlearned"].likelihood["last"] = 0.5       # the truth pushed below every distractor for half the facts
    singled_out = demo_checks(evals)[-1]
    assert singled_out["name"] == "not singled out by likelihood" and not singled_out["passed"]
    assert singled_out["threshold"] == pytest.approx(0.175)
    evals["unlearned"].likelihood["last"] = 0.15
    assert demo_checks(evals)[-1]["passed"]


@pytest.fixture()
def tiny_spec(tmp_path, taught_model, tokenizer, monkeypatch) -> DemoSpec:
    monkeypatch.setenv("UNLEARN_HOME", str(tmp_path / "home"))
    base = tmp_path / "base"
    taught_model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    return DemoSpec(base_model=str(base), n_people=2, replay="gold",
                    teach=TrainConfig(lr=3e-3, max_steps=2, batch_size=4, max_length=200))


FAST = ["train.max_steps=2", "train.max_length=200", "eval.max_new_tokens=3", "trainable.layers=-1:"]


def test_demo_end_to_end_on_a_tiny_model(tmp_path, tiny_spec, monkeypatch):
    printed = []
    report = run_demo(tmp_path / "demo", method="grad_diff", overrides=FAST, progress=False, spec=tiny_spec,
                      echo=printed.append)
    out = tmp_path / "demo"
    saved = json.loads((out / "report.json").read_text())
    assert saved["verdict"] in ("pass", "fail") and len(saved["checks"]) == 10
    assert [c["name"] for c in saved["checks"][-2:]] == ["forgotten by likelihood", "not singled out by likelihood"]
    tested = saved["evaluations"]["unlearned"]["likelihood"]
    assert tested["n_probes"] == 8 and tested["chance_top1"] == pytest.approx(0.1)  # every fact, nine distractors each
    assert "likelihood top-1" in printed[0] and "likelihood top-1" in (out / "report.html").read_text()
    assert set(saved["evaluations"]) == {"original", "deployed", "unlearned", "retain"}
    assert saved["training"]["steps"] == 2 and saved["method"]["name"] == "grad_diff"
    card = (out / "model" / "README.md").read_text()
    assert saved["request"]["hash"] in card and "grad_diff" in card
    assert (out / "model" / "model.safetensors").is_file() and "<svg" in (out / "report.html").read_text()
    assert "probe accuracy" in printed[0] and str(out / "report.html") in printed[0]
    home = tmp_path / "home" / "demo"
    taught = sorted(p.name.split("-")[0] for p in home.iterdir() if p.name.startswith(("deployed", "retain")))
    assert taught == ["deployed", "retain"]
    # a second run reuses the taught models (teaching again would fail) and their cached evaluations
    import unlearn.benchmarks.demo as demo_module

    monkeypatch.setattr(demo_module, "teach", lambda *a, **k: pytest.fail("the taught models were not reused"))
    again = run_demo(tmp_path / "demo2", method="grad_diff", overrides=FAST, progress=False, spec=tiny_spec,
                     echo=lambda _: None)
    assert again.evaluations["deployed"] == report.evaluations["deployed"]
    assert read_report(out) == report and report.unlearned_model is not None  # the JSON round trip


def test_a_damaged_run_report_names_what_is_wrong(tmp_path):
    from unlearn.errors import ConfigError
    from unlearn.run_report import RunReport

    evaluation = RequestEvaluation({"forget": GroupEvaluation(2, 0.5, 0.4, {"passed": True})}, {"forget": -1.0},
                                   {"passed": True})
    data = {"schema": "unlearn.report/1", "kind": "run", "created": "t", "title": "Unlearning: x", "request": {},
            "method": {"name": "npo"}, "model": {}, "config": {}, "roles": ["unlearned"],
            "evaluations": {"unlearned": evaluation.to_json()},
            "training": {"steps": 3, "seconds": 1.0, "stopped_early": False, "processes": 1, "history": []},
            "timings": {}, "headline": {"forget": {"before": 1.0, "after": 0.5}}}
    report = RunReport.from_json(data)
    assert report.accuracy("unlearned", "forget") == 0.5 and report.to_json() == data  # layout kept both ways
    with pytest.raises(ConfigError, match="lacks the field.*training"):
        RunReport.from_json({k: v for k, v in data.items() if k != "training"})
    with pytest.raises(ConfigError, match="evaluation of the unlearned model, group 'forget' lacks"):
        RunReport.from_json(data | {"evaluations": {"unlearned": {"groups": {"forget": {"n": 1}}, "answer_logprob": {},
                                                                  "fluency": {}}}})
    with pytest.raises(ConfigError, match="not a run's report"):
        RunReport.from_json(data | {"schema": "unlearn.audit/1"})
    with pytest.raises(ConfigError, match="kind 'sweep' is unknown"):
        RunReport.from_json(data | {"kind": "sweep"})
    with pytest.raises(ConfigError, match="does not exist"):
        read_report(tmp_path)
