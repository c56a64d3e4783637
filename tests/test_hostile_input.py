"""Hostile and careless request files: size and alias-expansion limits, deep nesting, bounded error messages,
and a property-based fuzz of the parser (every input gives a valid request or a one-line ConfigError)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlearn.cli import main
from unlearn.config import load_run_config
from unlearn.data import bounded
from unlearn.data.request import ForgetRequest, load_request
from unlearn.errors import ConfigError

VALID = {
    "id": "r1", "target": "Ada Quill", "kind": "privacy",
    "forget": {"qa": [{"question": "Where was Ada Quill born?", "answer": "Ada Quill was born in Ghent."}],
               "texts": ["Ada Quill lives in Ghent."]},
    "retain": {"qa": [{"question": "What is the capital of France?", "answer": "Paris."}]},
    "probes": {"forget": [{"question": "Where was Ada Quill born?", "answer": "Ghent",
                           "distractors": ["Bruges", "Leuven"]}]},
}


def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines + ["id: bomb", f"target: *l{levels - 1}", f"forget: {{texts: *l{levels - 1}}}"]) + "\n"


@pytest.fixture(autouse=True)
def default_limit():
    bounded.set_max_request_mb(None)
    yield
    bounded.set_max_request_mb(None)


def test_alias_bomb_is_refused_without_expanding(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())  # 9**9 strings once expanded: gigabytes
    assert path.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="aliases expand to more than the limit of 8 MB") as info:
            load_request(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # nothing was expanded (the expanded document is 9**9 list entries)
    assert len(str(info.value)) < 300 and "--max-request-mb" in str(info.value)


def test_alias_bomb_through_the_cli_is_one_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    done = subprocess.run([sys.executable, "-m", "unlearn.cli", "validate", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "aliases expand" in done.stderr


def test_modest_aliases_are_allowed(tmp_path):
    text = ("id: r\ntarget: Ada\nforget: {texts: [Ada lives in Ghent.]}\n"
            "probes:\n  forget:\n    - question: Where does Ada live?\n      answer: Ghent\n"
            "      distractors: &d [Bruges, Leuven]\n"
            "    - question: Where is the home of Ada?\n      answer: Ghent\n      distractors: *d\n")
    path = tmp_path / "r.yaml"
    path.write_text(text)
    request = load_request(path)
    assert [p.distractors for p in request.probes.forget] == [("Bruges", "Leuven")] * 2


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("id: r\ntarget: t\nforget: &f {texts: [a], qa: [*f]}\n")
    with pytest.raises(ConfigError, match="refers to a node that contains it"):
        load_request(path)


def test_size_limit_names_the_flag_and_the_flag_raises_it(tmp_path, capsys):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(VALID | {"description": "x" * 3000}))
    bounded.set_max_request_mb(0.002)
    with pytest.raises(ConfigError, match=r"over the limit of 0.002 MB \(raise it with `unlearn --max-request-mb"):
        load_request(path)
    assert main(["--max-request-mb", "0.002", "validate", str(path)]) == 2
    assert "--max-request-mb" in capsys.readouterr().err
    assert main(["--max-request-mb", "1", "validate", str(path)]) == 0


def test_size_limit_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(VALID))
    monkeypatch.setenv(bounded.MAX_REQUEST_ENV, "0.0001")
    with pytest.raises(ConfigError, match="over the limit"):
        load_request(path)
    monkeypatch.setenv(bounded.MAX_REQUEST_ENV, "lots")
    with pytest.raises(ConfigError, match="UNLEARN_MAX_REQUEST_MB must be a positive number"):
        load_request(path)


def test_configuration_files_have_the_same_limits(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(billion_laughs().replace("id: bomb", "method: {name: npo}"))
    with pytest.raises(ConfigError, match="aliases expand"):
        load_run_config(path)


@pytest.mark.parametrize("suffix, text", [
    (".json", "[" * 100_000 + "]" * 100_000),
    (".yaml", "a: " + "[" * 5_000 + "]" * 5_000),
    (".jsonl", '{"question": ' + "[" * 100_000 + "]" * 100_000 + "}"),
])
def test_deep_nesting_is_refused_in_one_line(tmp_path, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match="nested"):
        load_request(path)


@pytest.mark.parametrize("field, value", [
    ("target", list(range(100_000))),
    ("kind", "k" * 100_000),
    ("description", {"a": ["x" * 100_000]}),
])
def test_error_messages_never_print_unbounded_values(tmp_path, field, value):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(VALID | {field: value}))
    with pytest.raises(ConfigError) as info:
        load_request(path)
    assert len(str(info.value)) < 400 and field in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("id: r\ntarget: t\nforget: {texts: [a]}\nwhen: 2001-13-45\n", "not valid YAML"),  # a date that is no date
    ('{"id": "r", "target": "t", "n": ' + "9" * 5000 + "}", "not valid JSON"),  # more digits than int() reads
])
def test_values_the_parsers_cannot_convert_are_config_errors(tmp_path, text, message):
    path = tmp_path / ("r.yaml" if text.startswith("id") else "r.json")
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_request(path)


def test_jsonl_header_and_items_of_the_wrong_shape(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "r", "target": "t", "forget": {"texts": ["a"]}}\n{"text": "b"}\n')
    assert load_request(path).forget.texts == ["a", "b"]  # items add to what the header lists
    for lines, message in [(['{"id": "r", "probes": "x"}', '{"split": "probe", "question": "q", "answer": "a"}'],
                            "must be a mapping"),
                           (['{"id": "r", "forget": {"texts": "x"}}', '{"text": "b"}'], "must be a list"),
                           (['{"split": "probe", "group": ["x"], "question": "q", "answer": "a"}'], "group"),
                           (['{"split": {"a": 1}, "text": "b"}'], "split")]:
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(ConfigError, match=message):
            load_request(path)


# ---------------------------------------------------------------------------------------------- fuzz

# 300 fixed cases in the default suite; UNLEARN_FUZZ_CASES=N runs N fresh random ones
FUZZ_CASES = int(os.environ.get("UNLEARN_FUZZ_CASES", "300"))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
_json_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=20)
_keys = st.sampled_from(["id", "target", "kind", "description", "forget", "retain", "anchor", "probes",
                         "distractors", "texts", "qa", "question", "answer", "focus", "paraphrases", "aliases",
                         "statement", "generator", "n", "split", "group", "text"])


def _mutated(data, draw):
    """`data` with one value somewhere replaced by an arbitrary JSON value or one key renamed or dropped."""
    if isinstance(data, dict) and data and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(data)))
        action = draw(st.sampled_from(["replace", "descend", "drop", "rename"]))
        out = dict(data)
        if action == "drop":
            del out[key]
        elif action == "rename":
            out[draw(_keys)] = out.pop(key)
        elif action == "descend":
            out[key] = _mutated(out[key], draw)
        else:
            out[key] = draw(_json_values)
        return out
    if isinstance(data, list) and data and draw(st.booleans()):
        index = draw(st.integers(0, len(data) - 1))
        return data[:index] + [_mutated(data[index], draw)] + data[index + 1:]
    return draw(_json_values)


@st.composite
def request_files(draw) -> tuple[str, str]:
    """(suffix, text): a mutated valid request as YAML, JSON or JSONL, or bytes-level noise in those formats."""
    import yaml

    suffix = draw(st.sampled_from([".yaml", ".json", ".jsonl"]))
    data = VALID
    for _ in range(draw(st.integers(1, 3))):
        data = _mutated(data, draw)
    if suffix == ".yaml":
        text = yaml.safe_dump(data, allow_unicode=True) if draw(st.booleans()) else draw(st.text(max_size=200))
    elif suffix == ".json":
        text = json.dumps(data)
    else:
        records = [data] if not isinstance(data, dict) else [
            {k: v for k, v in data.items() if k not in ("forget", "retain", "probes")},
            *({"split": draw(st.sampled_from(["forget", "retain", "probe", "other"])), **(q if isinstance(q, dict)
               else {"text": q})} for q in draw(st.lists(_json_values, max_size=3)))]
        text = "\n".join(json.dumps(r) for r in records)
    if draw(st.booleans()):  # cut or splice the text somewhere
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=10)) + text[cut + draw(st.integers(0, 5)):]
    return suffix, text


@settings(max_examples=FUZZ_CASES, deadline=None, derandomize="UNLEARN_FUZZ_CASES" not in os.environ,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=request_files())
def test_fuzz_every_request_file_is_valid_or_a_config_error(case, tmp_path):
    suffix, text = case
    path = tmp_path / f"fuzz{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        request = load_request(path)
    except ConfigError as exc:
        message = str(exc)
        assert message and len(message) < 2000 and "\n" not in message.strip()
        return
    assert isinstance(request, ForgetRequest) and request.forget


def test_fuzz_bytes_through_the_cli_exit_2(tmp_path):
    """Undecodable bytes and a NUL-laden file: status 2 and one line, never a traceback."""
    for name, raw in [("a.yaml", b"\xff\xfe\x00id: r"), ("b.json", b'{"id": "r\x00"'), ("c.jsonl", b"\x80\n")]:
        path = tmp_path / name
        path.write_bytes(raw)
        done = subprocess.run([sys.executable, "-m", "unlearn.cli", "validate", str(path)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_lone_surrogates_are_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"id": "r", "target": "\\ud800", "forget": {"texts": ["a"]}}')  # a valid JSON escape
    with pytest.raises(ConfigError, match="target is not valid Unicode"):
        load_request(path)
