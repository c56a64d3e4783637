"""Configuration parsing, overrides, the registry, and request files."""

from __future__ import annotations

import json

import pytest
import yaml

from unlearn.config import (
    RunConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_run_config,
    save_yaml,
    to_dict,
    with_overrides,
)
from unlearn.data.request import load_request, request_from_dict
from unlearn.errors import ConfigError
from unlearn.methods import make_method
from unlearn.registry import Registry

from .conftest import tiny_request_dict


def test_overrides_and_types(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 1e-4}, "method": {"name": "npo", "beta": 0.2}}))
    cfg = load_run_config(path, ["train.max_steps=12", "trainable.mode=lora", "train.lr=3e-5"])
    assert cfg.train.max_steps == 12 and cfg.trainable.mode == "lora" and cfg.train.lr == pytest.approx(3e-5)
    assert cfg.method == {"name": "npo", "beta": 0.2}
    assert from_dict(RunConfig, to_dict(cfg)) == cfg
    save_yaml(cfg, tmp_path / "saved.yaml")
    assert load_run_config(tmp_path / "saved.yaml") == cfg


def test_override_values_keep_their_text():
    cfg = from_dict(RunConfig, apply_overrides({}, ["trainable.layers=-1:", "trainable.lora_targets=[q_proj, v_proj]",
                                                    "train.lr=1e-4", "method.name=npo"]))
    assert cfg.trainable.layers == "-1:" and cfg.trainable.lora_targets == ["q_proj", "v_proj"]
    assert cfg.train.lr == pytest.approx(1e-4) and cfg.method["name"] == "npo"


def test_a_multiplier_override_scales_the_value_the_key_holds():
    data = apply_overrides(to_dict(RunConfig()), ["train.lr=1e-4", "train.lr=x3", "train.epochs=x2", "train.lr=x.5"])
    cfg = from_dict(RunConfig, data)
    assert cfg.train.lr == pytest.approx(1.5e-4) and cfg.train.epochs == 2 * RunConfig().train.epochs
    assert apply_overrides({"train": {"lr": 1e-4}}, ["train.lr=x3"])["train"]["lr"] == 3e-4  # exactly, for the record
    assert from_dict(RunConfig, apply_overrides(to_dict(RunConfig()), ["train.lr=2e-4", "train.lr=x1e-1"])).train.lr \
        == pytest.approx(2e-5)
    with pytest.raises(ConfigError, match="train.lr.*no number here"):
        apply_overrides(to_dict(RunConfig()), ["train.lr=x2"])  # no rate by default: the method chooses it
    with pytest.raises(ConfigError, match="method.beta.*no number here"):
        apply_overrides({"method": {"name": "npo"}}, ["method.beta=x2"])  # the method's own default is not in the dict
    with pytest.raises(ConfigError, match="no number here"):
        apply_overrides(to_dict(RunConfig()), ["train.early_stop=x2"])  # a flag is not a number
    assert apply_overrides({}, ["model.name=x2b"])["model"]["name"] == "x2b"  # not a multiplier: kept as text


def test_load_run_config_multiplies_the_defaults_and_the_file(tmp_path):
    assert load_run_config(None, ["train.batch_size=x2"]).train.batch_size == 2 * RunConfig().train.batch_size
    (tmp_path / "run.yaml").write_text("train:\n  lr: 1.0e-4\n")
    assert load_run_config(tmp_path / "run.yaml", ["train.lr=x3"]).train.lr == pytest.approx(3e-4)


def test_with_overrides_builds_the_class_from_an_instance_or_its_dict_and_names_where_a_key_is_wrong():
    base = RunConfig(train=TrainConfig(lr=1e-4, epochs=2))
    config = with_overrides(RunConfig, base, ["train.lr=x3", "method.name=simnpo"])
    assert isinstance(config, RunConfig)
    assert (config.train.lr, config.train.epochs, config.method["name"]) == (3e-4, 2, "simnpo")
    assert base.train.lr == 1e-4  # the base is not changed
    assert with_overrides(TrainConfig, to_dict(base.train), None) == base.train
    with pytest.raises(ConfigError, match="shard setting.*Did you mean 'epochs'"):
        with_overrides(TrainConfig, base.train, ["epocs=3"], "shard setting")


def test_unknown_and_mistyped_keys_are_errors():
    with pytest.raises(ConfigError, match="Did you mean 'lr'"):
        from_dict(RunConfig, {"train": {"lrr": 1.0}})
    with pytest.raises(ConfigError, match="expected int"):
        from_dict(RunConfig, apply_overrides({}, ["train.max_steps=ten"]))
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["train.lr"])


def test_method_hyperparameters_are_checked():
    assert make_method({"name": "npo", "beta": 1}).beta == 1.0
    with pytest.raises(ConfigError, match="Did you mean 'beta'"):
        make_method({"name": "npo", "betta": 0.2})
    with pytest.raises(ConfigError, match="Did you mean 'npo'"):
        make_method("nop")
    with pytest.raises(ConfigError, match="retain_loss"):
        make_method({"name": "grad_diff", "retain_loss": "mse"})


def test_registry_rejects_duplicates():
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(ValueError):
        reg.register("a")(2)
    assert reg.names() == ["a"] and "a" in reg


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_request_round_trip(tmp_path, suffix):
    data = tiny_request_dict()
    path = tmp_path / f"r{suffix}"
    path.write_text(yaml.safe_dump(data) if suffix == ".yaml" else json.dumps(data))
    request = load_request(path)
    assert request.id == "forget-ada" and len(request.forget.qa) == 4
    assert request.probes.forget[0].paraphrases == ("Ada Quill's birthplace?",)
    assert request.content_hash() == request_from_dict(data).content_hash()


def test_qa_focus_is_read_and_changes_the_hash():
    data = tiny_request_dict()
    plain = request_from_dict(data)
    answer = data["forget"]["qa"][0]["answer"]
    data["forget"]["qa"][0]["focus"] = [answer.split()[-1].rstrip(".")]
    focused = request_from_dict(data)
    assert focused.forget.qa[0].focus == (answer.split()[-1].rstrip("."),) and plain.forget.qa[0].focus == ()
    assert focused.content_hash() != plain.content_hash()
    assert request_from_dict(focused.to_dict()).content_hash() == focused.content_hash()


def test_anchor_is_read_counted_and_hashed_only_when_present():
    data = tiny_request_dict()
    plain = request_from_dict(data)
    assert plain.content_hash() == request_from_dict({**data, "anchor": {}}).content_hash()
    anchored = request_from_dict({**data, "anchor": {"texts": ["The sky is blue."],
                                                     "qa": [{"question": "Sky?", "answer": "Blue."}]}})
    assert anchored.anchor.texts == ["The sky is blue."] and anchored.summary()["anchor_qa"] == 1
    assert anchored.content_hash() != plain.content_hash()
    assert request_from_dict(anchored.to_dict()).content_hash() == anchored.content_hash()
    with pytest.raises(ConfigError, match="Did you mean 'texts'"):
        request_from_dict({**data, "anchor": {"text": ["x"]}})


def test_jsonl_request(tmp_path):
    lines = [
        {"id": "r1", "target": "Ada", "kind": "privacy"},
        {"question": "Where was Ada born?", "answer": "Oslo."},
        {"text": "Ada Quill keeps bees."},
        {"split": "retain", "question": "Sky?", "answer": "Blue."},
        {"split": "anchor", "text": "Grass is green."},
        {"split": "probe", "group": "forget", "question": "Where was Ada born?", "answer": "Oslo"},
    ]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    request = load_request(path)
    assert request.kind == "privacy" and len(request.forget.qa) == 1 and request.forget.texts == ["Ada Quill keeps bees."]
    assert len(request.retain.qa) == 1 and len(request.probes.forget) == 1
    assert request.anchor.texts == ["Grass is green."]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("forget"), "forget set is empty"),
        (lambda d: d.update(forget={"qa": []}), "forget set is empty"),
        (lambda d: d.update(kind="privcy"), "Did you mean 'privacy'"),
        (lambda d: d.update(forgett={}), "Did you mean 'forget'"),
        (lambda d: d["forget"]["qa"].append({"question": "Q?"}), "answer must be a non-empty string"),
        (lambda d: d["probes"].update(neighbor=[]), "Did you mean 'neighbour'"),
        (lambda d: d.pop("id"), "id must be a non-empty string"),
        (lambda d: d["forget"]["qa"][0].update(focus=["Lima"]), r"focus\[0\] 'Lima' does not occur"),
        (lambda d: d["forget"]["qa"][0].update(focus="Oslo"), "focus must be a list of strings"),
    ],
)
def test_bad_requests_name_the_problem(mutate, message):
    data = tiny_request_dict()
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        request_from_dict(data)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_request(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_request(bad)
    txt = tmp_path / "r.txt"
    txt.write_text("x")
    with pytest.raises(ConfigError, match="unsupported"):
        load_request(txt)


def test_probe_aliases_are_accepted_answers():
    from unlearn.metrics.probes import probe_accuracy

    data = tiny_request_dict()
    data["probes"]["general"] = [{"question": "How many sides has a hexagon?", "answer": "six", "aliases": ["6"]}]
    probe = request_from_dict(data).probes.general[0]
    assert probe.aliases == ("6",)
    result = probe_accuracy(["It has 6 sides.", "It has 16 sides."], ["six", "six"], [probe.aliases, probe.aliases])
    assert result.per_example == [1.0, 0.0]
