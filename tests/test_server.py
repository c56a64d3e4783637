"""`unlearn serve` on localhost with a tiny model: concurrent clients, a forget request added through the
admin endpoint taking effect, restarts from the state directory, and bad requests answered with proper
HTTP errors without stopping the server."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from unlearn.errors import ConfigError
from unlearn.guards import REFUSAL
from unlearn.guards.server import ServeState, build_server

from .test_attacks import audit_request_dict

TOKEN = "test-token"
QUESTION = "Where was Ada Quill born?"


@pytest.fixture()
def running(tmp_path, taught, tokenizer):
    """A server on a free localhost port, stopped after the test."""
    started: dict = {}  # state directory -> its running server

    def stop(state) -> None:
        httpd = started.pop(state, None)
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def start(state=tmp_path / "state", guards=({"name": "refusal_filter"},), **kwargs):
        stop(state)  # a restart: the state directory serves one server at a time
        httpd, app = build_server("tiny", state, list(guards) if guards else None, token=TOKEN, port=0,
                                  model=taught, tokenizer=tokenizer, max_body=4096, max_tokens=64, **kwargs)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        started[state] = httpd
        return f"http://127.0.0.1:{httpd.server_address[1]}", app

    yield start
    for state in list(started):
        stop(state)


def call(url: str, path: str, body=None, token: str | None = None, raw: bytes | None = None, method=None):
    """(status, parsed JSON) of one HTTP call."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method=method or ("POST" if data is not None else "GET"))
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def chat(url: str, question: str, **settings) -> str:
    status, payload = call(url, "/v1/chat/completions", {"messages": [{"role": "user", "content": question}],
                                                         "max_tokens": 64, **settings})
    assert status == 200, payload
    return payload["choices"][0]["message"]["content"]


def test_clients_in_parallel_and_a_request_added_through_the_admin_endpoint(running, tmp_path):
    url, app = running()
    status, health = call(url, "/health")
    assert status == 200 and health["requests"] == 0 and health["guards"] == ["refusal_filter"]
    before = chat(url, QUESTION)
    assert before != REFUSAL

    questions = [QUESTION, "What is the capital of France?", "Who wrote Hamlet?", "Name a colour."] * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda q: chat(url, q), questions))
    assert replies[0] == before and len(set(replies[0::4])) == 1  # the same greedy answer under concurrency

    status, added = call(url, "/admin/requests", audit_request_dict(), token=TOKEN)
    assert status == 201 and added["requests"] == 1 and added["status"] == "guarded"
    assert chat(url, QUESTION) == REFUSAL
    assert chat(url, "What is the capital of France?") == replies[1]
    assert call(url, "/admin/requests", audit_request_dict(), token=TOKEN)[1]["status"] == "already guarded"
    changed = {**audit_request_dict(), "description": "another text"}
    assert call(url, "/admin/requests", changed, token=TOKEN)[0] == 409
    status, listed = call(url, "/admin/requests", token=TOKEN)
    assert status == 200 and [r["id"] for r in listed["requests"]] == ["forget-ada"]

    status, completion = call(url, "/v1/completions", {"prompt": "The capital of France is", "max_tokens": 4})
    assert status == 200 and completion["object"] == "text_completion" and completion["usage"]["completion_tokens"] <= 4
    status, sampled = call(url, "/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}],
                                                         "temperature": 1.0, "n": 3, "max_tokens": 8})
    assert status == 200 and [c["message"]["content"] for c in sampled["choices"]] == [REFUSAL[:len(c["message"]["content"])] for c in sampled["choices"]]


def test_restart_keeps_guards_and_requests(running, tmp_path):
    url, _ = running()
    assert call(url, "/admin/requests", audit_request_dict(), token=TOKEN)[0] == 201
    again, app = running(guards=None)  # the state directory remembers the guards and the request
    assert app.state.guards == [{"name": "refusal_filter"}] and len(app.guarded.requests) == 1
    assert chat(again, QUESTION) == REFUSAL
    with pytest.raises(ConfigError, match="already serves with guards"):
        ServeState.open(tmp_path / "state", "tiny", [{"name": "constrained_decoding"}])
    with pytest.raises(ConfigError, match="belongs to model"):
        ServeState.open(tmp_path / "state", "other-model", None)
    with pytest.raises(ConfigError, match="needs --guards"):
        ServeState.open(tmp_path / "fresh", "tiny", None)


def test_a_second_server_on_the_same_state_is_refused(running, tmp_path, taught, tokenizer):
    from unlearn.errors import UnlearnError

    running()
    with pytest.raises(UnlearnError, match="is in use by unlearn pid"):
        build_server("tiny", tmp_path / "state", None, token=TOKEN, port=0, model=taught, tokenizer=tokenizer)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        build_server("tiny", tmp_path / "afile", None, token=TOKEN, port=0, model=taught, tokenizer=tokenizer)


def test_bad_requests_get_http_errors_and_the_server_keeps_going(running):
    url, _ = running()
    bad = [
        (call(url, "/v1/chat/completions", raw=b"{not json"), 400),
        (call(url, "/v1/chat/completions", raw=b"[1, 2]"), 400),
        (call(url, "/v1/chat/completions", {"messages": []}), 400),
        (call(url, "/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}), 400),
        (call(url, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**6}), 400),
        (call(url, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}), 400),
        (call(url, "/v1/completions", {"prompt": 7}), 400),
        (call(url, "/v1/chat/completions", raw=json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode()), 413),
        (call(url, "/admin/requests", audit_request_dict()), 401),
        (call(url, "/admin/requests", audit_request_dict(), token="wrong"), 401),
        (call(url, "/admin/requests", {"id": "x"}, token=TOKEN), 400),
        (call(url, "/nowhere"), 404),
        (call(url, "/v1/chat/completions", method="GET"), 405),
    ]
    for (status, payload), expected in bad:
        assert status == expected, payload
        assert payload["error"]["message"] and payload["error"]["code"] == expected
    assert call(url, "/health")[1]["requests"] == 0  # nothing was added, and the server still answers
    assert chat(url, QUESTION)


def test_the_openai_client_plain_and_streaming(running):
    from openai import OpenAI

    url, _ = running()
    client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
    messages = [{"role": "user", "content": QUESTION}]

    def streamed_chat(max_tokens=16, **settings) -> tuple[str, list]:
        chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=max_tokens,
                                                     stream=True, **settings))
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks

    plain = client.chat.completions.create(model="tiny", messages=messages, max_tokens=16)
    answer = plain.choices[0].message.content
    assert answer and answer == chat(url, QUESTION, max_tokens=16) and answer != REFUSAL
    text, chunks = streamed_chat(stream_options={"include_usage": True})
    assert text == answer
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # token by token
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens

    completion = client.completions.create(model="tiny", prompt="The capital of France is", max_tokens=6)
    pieces = list(client.completions.create(model="tiny", prompt="The capital of France is", max_tokens=6,
                                            stream=True))
    assert "".join(c.choices[0].text for c in pieces) == completion.choices[0].text and len(pieces) > 1

    assert call(url, "/admin/requests", audit_request_dict(), token=TOKEN)[0] == 201
    guarded = client.chat.completions.create(model="tiny", messages=messages, max_tokens=64)
    assert guarded.choices[0].message.content == REFUSAL
    assert streamed_chat(max_tokens=64)[0] == REFUSAL  # the streamed answer is guarded too, from its first piece


def test_streaming_settings_are_checked(running):
    url, _ = running()
    question = [{"role": "user", "content": QUESTION}]
    for body in ({"messages": question, "stream": "yes"}, {"messages": question, "stream": True,
                                                           "stream_options": {"include_usage": "yes"}}):
        status, payload = call(url, "/v1/chat/completions", body)
        assert status == 400 and "stream" in payload["error"]["message"]


def test_stream_pieces_join_to_the_text_and_events_follow_the_chunk_format(tokenizer):
    from unlearn.guards.server import stream_events, text_pieces

    for text in ("Ada Quill was born in Lyon.", "Zoë — 東京 🙂 naïve", "", " leading space"):
        assert "".join(text_pieces(tokenizer, text)) == text
    response = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "tiny",
                "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                            for i, t in enumerate(["Lyon.", "Paris"])],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    events = stream_events(tokenizer, response, include_usage=True)
    assert events[-1] == "data: [DONE]\n\n" and all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-1" for c in chunks)
    for index, text in enumerate(["Lyon.", "Paris"]):
        mine = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == index]
        assert mine[0]["delta"] == {"role": "assistant", "content": ""}
        assert "".join(m["delta"].get("content", "") for m in mine) == text
        assert [m["finish_reason"] for m in mine] == [None] * (len(mine) - 1) + ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7


def test_cli_serve_starts_answers_and_stops(tmp_path, model_dir):
    import re
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "unlearn.cli", "serve", str(model_dir), "--state",
                                str(tmp_path / "state"), "--guards", "refusal_filter", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line + process.stderr.read() if process.poll() is not None else line
        url = f"http://127.0.0.1:{match.group(1)}"
        token = (tmp_path / "state" / "admin_token").read_text().strip()
        assert (tmp_path / "state" / "admin_token").stat().st_mode & 0o077 == 0
        assert call(url, "/health")[0] == 200
        assert call(url, "/admin/requests", audit_request_dict(), token=token)[0] == 201
        assert chat(url, QUESTION) == REFUSAL
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_taken_port_is_a_clear_error(running, tmp_path, taught, tokenizer):
    url, _ = running()
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
        build_server("tiny", tmp_path / "other", [{"name": "refusal_filter"}], token=TOKEN, port=port,
                     model=taught, tokenizer=tokenizer)


# --- damaged state, crashes, disconnects and load ---------------------------------------------------------

OTHER = {"id": "forget-bo", "target": "Bo Lind", "forget": {"texts": ["Bo Lind lives in Riga."]}}


def test_a_missing_or_damaged_request_file_is_reported_and_the_rest_served(running, tmp_path, caplog):
    url, app = running()
    assert call(url, "/admin/requests", audit_request_dict(), token=TOKEN)[0] == 201
    assert call(url, "/admin/requests", OTHER, token=TOKEN)[0] == 201
    state = tmp_path / "state"
    app.state.request_file("forget-ada").unlink()
    app.state.request_file("forget-bo").write_text("{half a req")
    with caplog.at_level("WARNING", logger="unlearn.guards.server"):
        again, restarted = running(guards=None)
    warnings = [r.getMessage() for r in caplog.records if "NOT guarded" in r.getMessage()]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert any("forget-ada" in w and "missing" in w for w in warnings)
    assert any("forget-bo" in w and "damaged" in w for w in warnings)
    status, health = call(again, "/health")
    assert status == 200 and health["status"] == "degraded" and health["requests"] == 0
    assert {u["id"] for u in health["unguarded"]} == {"forget-ada", "forget-bo"}
    assert chat(again, QUESTION) != REFUSAL  # not silently guarded either: it is reported as unguarded
    # posting it again guards it, and the index keeps one entry per request
    assert call(again, "/admin/requests", audit_request_dict(), token=TOKEN)[0] == 201
    assert chat(again, QUESTION) == REFUSAL
    assert json.loads((state / "state.json").read_text())["requests"] == ["forget-ada", "forget-bo"]
    listed = call(again, "/admin/requests", token=TOKEN)[1]
    assert [r["id"] for r in listed["requests"]] == ["forget-ada"]
    assert [u["id"] for u in listed["unguarded"]] == ["forget-bo"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "is damaged"),
    ('{"schema": "unlearn.serve/1", "model": "tiny", "guards": [], "requests": "forget-ada"}', "wrong type"),
    ("[1, 2]", "not an unlearn serve state"),
])
def test_a_damaged_state_file_is_one_line_that_says_how_to_repair_it(tmp_path, content, message):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        ServeState.open(tmp_path / "state", "tiny", None)
    assert "move" in str(info.value) and "\n" not in str(info.value)


def test_a_client_that_disconnects_is_one_log_line(running, caplog, capfd):
    import socket
    import struct

    url, _ = running()
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 64}).encode()
    with caplog.at_level("WARNING", logger="unlearn.guards.server"):
        for _ in range(5):  # the reset must arrive before the answer is written; a few tries make that sure
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # linger 0: a reset, not a polite close
        chat(url, "Name a colour.")  # the server still answers
    err = capfd.readouterr().err
    assert "Traceback" not in err
    messages = [r.getMessage() for r in caplog.records]
    assert any("disconnected before the 200 response" in m for m in messages), messages
    assert all("\n" not in m for m in messages)


def _serve(model_dir, state, kill_at: str | None = None):
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("UNLEARN_KILL_AT", None)
    if kill_at:
        env["UNLEARN_KILL_AT"] = kill_at
    process = subprocess.Popen([sys.executable, "-m", "unlearn.cli", "serve", str(model_dir), "--state", str(state),
                                "--guards", "refusal_filter", "--port", "0", "--token", TOKEN], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
    assert match, line + (process.stderr.read() if process.poll() is not None else "")
    return process, f"http://127.0.0.1:{match.group(1)}"


@pytest.mark.parametrize("point", ["serve-before-request-file", "serve-request-file-written", "serve-state-written"])
def test_a_server_killed_while_recording_a_request_restarts(point, model_dir, tmp_path):
    import signal

    state = tmp_path / "state"
    process, url = _serve(model_dir, state, kill_at=point)
    try:
        with pytest.raises(OSError):  # the connection dies with the process
            call(url, "/admin/requests", audit_request_dict(), token=TOKEN)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        process.kill()
    process, url = _serve(model_dir, state)  # it opens, whatever the point
    try:
        health = call(url, "/health")[1]
        assert health["status"] == "ok" and health["requests"] == (1 if point == "serve-state-written" else 0)
        status, _ = call(url, "/admin/requests", audit_request_dict(), token=TOKEN)  # the client retries
        assert status == (200 if point == "serve-state-written" else 201)
        assert chat(url, QUESTION) == REFUSAL
        assert json.loads((state / "state.json").read_text())["requests"] == ["forget-ada"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_load_with_forget_requests_arriving_loses_nothing(running):
    from unlearn.guards.load import run_load

    url, app = running()
    forget = [{**OTHER, "id": f"forget-{i}", "target": f"Person {i}",
               "forget": {"texts": [f"Person {i} lives in town {i}."]}} for i in range(4)]
    report = run_load(url, TOKEN, clients=16, calls=20, forget_requests=forget, max_tokens=4)
    assert report.errors == [] and report.lost_requests == []
    assert len(report.completion_s) == 16 * 20 and len(report.forget_s) == 4
    assert len(app.guarded.requests) == 4
    assert set(report.percentiles()) == {"p50_ms", "p90_ms", "p99_ms", "max_ms"}
