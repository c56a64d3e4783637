"""The `unlearn` command end to end on a tiny model: files written, errors, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from unlearn.auditing import read_audit
from unlearn.cli import main
from unlearn.run_report import read_report

from .conftest import tiny_request_dict

FAST = ["--set", "train.max_steps=3", "--set", "train.batch_size=2", "--set", "train.max_length=96",
        "--set", "trainable.mode=all", "--set", "eval.max_new_tokens=4", "--quiet"]


@pytest.fixture()
def request_file(tmp_path) -> Path:
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(tiny_request_dict()))
    return path


def test_run_writes_model_card_and_reports(tmp_path, model_dir, request_file, capsys):
    out = tmp_path / "out"
    code = main(["run", str(request_file), "--method", "npo", "--model", str(model_dir), "--out", str(out), *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    assert "forget" in printed and str(out / "report.html") in printed
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "config.json").is_file()
    assert load_file(out / "model" / "model.safetensors")
    card = (out / "model" / "README.md").read_text()
    assert "forget-ada" in card and "npo" in card and "beta" in card
    report = json.loads((out / "report.json").read_text())
    assert report["request"]["hash"] in card
    assert report["method"]["name"] == "npo" and report["training"]["steps"] == 3
    assert set(report["evaluations"]) == {"original", "unlearned"}
    assert read_report(out).to_json() == report  # the typed report reads back to the same JSON
    assert "<svg" in (out / "report.html").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    from unlearn.data.request import load_request

    assert load_request(out / "request.json").content_hash() == report["request"]["hash"]


def test_run_with_audit_writes_the_audit_beside_the_run(tmp_path, model_dir, request_file, capsys):
    out = tmp_path / "out"
    code = main(["run", str(request_file), "--method", "npo", "--model", str(model_dir), "--out", str(out), "--audit",
                 *FAST])
    assert code in (0, 1)  # 1: the tiny run does not pass the audit's thresholds
    audit = read_audit(out / "audit")
    assert audit.roles == ["unlearned", "original"]
    assert set(audit.attacks) == {"relearn", "quantize", "leak_at_k", "paraphrase", "in_context", "jailbreak",
                                     "multi_hop", "mixed_prompt", "multi_turn"}
    assert "worst-case recovery" in capsys.readouterr().out


def test_same_run_reruns_but_different_run_is_refused(tmp_path, model_dir, request_file, capsys):
    out = tmp_path / "out"
    args = ["run", str(request_file), "--model", str(model_dir), "--out", str(out), "--no-eval", *FAST]
    assert main(args + ["--method", "grad_ascent"]) == 0
    assert main(args + ["--method", "grad_ascent"]) == 0
    assert main(args + ["--method", "npo"]) == 2
    assert "different run" in capsys.readouterr().err
    assert json.loads((out / "report.json").read_text())["method"]["name"] == "grad_ascent"
    assert main(args + ["--method", "npo", "--overwrite"]) == 0
    assert json.loads((out / "report.json").read_text())["method"]["name"] == "npo"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "nop"], "Did you mean 'npo'"),
        (["--set", "method.betta=0.3"], "Did you mean 'beta'"),
        (["--set", "train.lrr=1"], "Did you mean 'lr'"),
        (["--model", "/no/such/model"], "not found"),
    ],
)
def test_bad_options_fail_with_one_line(tmp_path, model_dir, request_file, capsys, extra, message):
    out = tmp_path / "out"
    args = ["run", str(request_file), "--model", str(model_dir), "--out", str(out), *FAST, *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error:")
    assert not out.exists()


def test_bad_request_files(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"id": "x", "target": "X", "forget": {"qa": []}}))
    assert main(["validate", str(empty)]) == 2
    assert "forget set is empty" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_validate_and_ls(request_file, capsys):
    assert main(["validate", str(request_file)]) == 0
    printed = capsys.readouterr()
    assert "valid request" in printed.out and "warning" not in printed.err
    assert main(["ls", "methods"]) == 0
    listed = capsys.readouterr().out
    from unlearn.methods import METHODS

    assert len(METHODS.names()) >= 8
    for name in METHODS.names():
        assert name in listed
    assert main(["ls", "metrics"]) == 0
    assert "probe_accuracy" in capsys.readouterr().out


def test_a_closed_output_pipe_ends_the_command_quietly():
    """`unlearn ls methods | head -1`: the reader stops early; no traceback, the SIGPIPE status."""
    proc = subprocess.Popen([sys.executable, "-m", "unlearn", "ls", "methods"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    proc.stdout.close()  # the reader goes away before the command prints
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_ls_settings_prints_a_config_that_loads_back_as_the_defaults(tmp_path, capsys):
    from unlearn.config import RunConfig, load_run_config

    assert main(["ls", "settings"]) == 0
    (tmp_path / "run.yaml").write_text(capsys.readouterr().out)
    assert load_run_config(tmp_path / "run.yaml") == RunConfig()
    edited = (tmp_path / "run.yaml").read_text().replace("  lr: null", "  lr: 0.0002")
    (tmp_path / "run.yaml").write_text(edited)
    assert load_run_config(tmp_path / "run.yaml").train.lr == 2e-4


def test_eval_writes_json(tmp_path, model_dir, request_file):
    out = tmp_path / "eval.json"
    assert main(["eval", str(model_dir), "--request", str(request_file), "--out", str(out), "--set", "eval.max_new_tokens=4"]) == 0
    data = json.loads(out.read_text())
    assert set(data["groups"]) == {"forget", "forget_paraphrase", "neighbour", "general"}
    assert 0.0 <= data["groups"]["forget"]["accuracy"] <= 1.0


def test_nan_loss_is_reported_and_writes_nothing(tmp_path, model_dir, request_file, capsys):
    out = tmp_path / "out"
    args = ["run", str(request_file), "--method", "grad_ascent", "--model", str(model_dir), "--out", str(out),
            "--no-eval", *FAST, "--set", "train.lr=1e30", "--set", "train.max_grad_norm=0", "--set", "train.max_steps=30"]
    assert main(args) == 2
    assert "train.lr" in capsys.readouterr().err
    assert not out.exists()


def test_ctrl_c_leaves_no_output(tmp_path, model_dir, request_file):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "unlearn.cli", "run", str(request_file), "--model", str(model_dir), "--out", str(out),
           "--no-eval", "--set", "train.max_steps=100000", "--set", "trainable.mode=all", "--set", "train.batch_size=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.time() + 120
        seen = ""
        while time.time() < deadline and "unlearning" not in seen:
            seen += proc.stderr.read(1)  # tqdm writes the bar to stderr once training starts
        assert "unlearning" in seen, "training never started"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_audit_profiles_on_the_command_line():
    from unlearn.auditing import audit_config
    from unlearn.cli import AUDIT_PROFILES, build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "r.yaml", "--audit"]).audit == "full"
    assert parser.parse_args(["run", "r.yaml", "--audit", "quick"]).audit == "quick"
    assert parser.parse_args(["run", "r.yaml"]).audit is None
    assert parser.parse_args(["demo", "--audit", "quick"]).audit == "quick"
    assert parser.parse_args(["audit", "m", "--request", "r.yaml", "--quick"]).quick
    assert audit_config(overrides=AUDIT_PROFILES["quick"]).stop_at_failure
    assert not audit_config(overrides=AUDIT_PROFILES["full"]).stop_at_failure


def test_validate_warns_of_an_answer_a_refusal_would_give(tmp_path, capsys):
    """'No' is in "I have no idea": a model that declines would count as answering, so the request is valid but
    its forgetting could never be measured."""
    data = tiny_request_dict()
    data["probes"]["forget"][0]["answer"] = "No"
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 0
    printed = capsys.readouterr()
    assert "warning: the answer 'No'" in printed.err and "a model that declines" in printed.err
    assert len(json.loads(printed.out[:printed.out.rindex("}") + 1])["cautions"]) == 1
