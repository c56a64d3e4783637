"""`unlearn serve`: a guarded model behind a small OpenAI-compatible HTTP server.

    POST /v1/chat/completions   {"messages": [...], "max_tokens", "temperature", "top_p", "n", "seed"}
    POST /v1/completions        {"prompt": "...", same settings}
    GET  /v1/models, GET /health
    POST /admin/requests        a forget request (the request-file schema), with "Authorization: Bearer TOKEN";
                                it guards the next call
    GET  /admin/requests        the guarded requests (same token)

The state directory keeps what a restart needs: `state.json` (model, guard settings, the guarded requests'
ids in order), `requests/<id>.json` (each request as received) and `admin_token` (mode 0600) when no token
is given. Every file is written atomically, a request before the index that names it, so a crash at any
point leaves a state that opens. On start every reference is checked: a request whose file is missing or
damaged is logged in one line, listed under "unguarded" in /health and GET /admin/requests, and guarded
again when it is posted again; the rest are served. A damaged state.json is one error that says how to
repair it. A running server holds the directory's lock (`lock`): a second server on it is refused. Guards
that learn per request (embedding_corruption's strength) learn again when the server starts.

The server binds to 127.0.0.1 by default. Calls run one at a time on the model (a lock; the HTTP side is
threaded), bodies over `max_body` bytes are refused with 413, malformed JSON or settings with 400, a
missing or wrong token with 401, and any failure inside a call with 500, without stopping the server; a
client that disconnects before its answer is one log line.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..data.bounded import shown
from ..data.request import ForgetRequest, request_from_dict
from ..errors import ConfigError, UnlearnError
from ..io import atomic_write_json, atomic_write_text, sha256_json
from ..requests.faults import kill_point
from ..requests.state import StateLock

log = logging.getLogger(__name__)

SCHEMA = "unlearn.serve/1"
MAX_BODY = 1 << 20
MAX_TOKENS = 256
MAX_N = 8


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


@dataclass
class ServeState:
    """The state directory: settings, guarded requests, admin token."""

    directory: Path
    model: str = ""
    guards: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @staticmethod
    def open(directory: str | Path, model: str, guards: list[dict[str, Any]] | None) -> ServeState:
        """Load the state directory, or start one with `guards`. Guards given for an existing directory must
        match what it holds (to change them, start a new directory). A damaged state.json is one ConfigError
        that says how to repair it."""
        state = ServeState(Path(directory))
        if state.state_file.is_file():
            data = _read_state(state.state_file)
            state.model, state.guards, state.request_ids = data["model"], data["guards"], data["requests"]
            if guards and guards != state.guards:
                raise ConfigError(f"{directory} already serves with guards {state.guards}; leave out --guards to "
                                  "use them, or give a new --state directory")
            if model != state.model:
                raise ConfigError(f"{directory} belongs to model {state.model!r}, not {model!r}")
            return state
        if not guards:
            raise ConfigError("a new state directory needs --guards (e.g. --guards refusal_filter)")
        state.model, state.guards = model, guards
        state.save()
        return state

    def save(self) -> None:
        atomic_write_json(self.state_file, {"schema": SCHEMA, "model": self.model, "guards": self.guards,
                                            "requests": self.request_ids})

    def request_file(self, request_id: str) -> Path:
        return self.directory / "requests" / f"{sha256_json(request_id)[:16]}.json"

    def load_requests(self) -> tuple[list[ForgetRequest], dict[str, str]]:
        """(the requests that load, {id: what is wrong} for those whose file is missing or damaged). A request
        that does not load stays in the index, reported, until it is posted again."""
        out, problems = [], {}
        for rid in self.request_ids:
            path = self.request_file(rid)
            try:
                request = request_from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))
            except FileNotFoundError:
                problems[rid] = f"{path} is missing"
            except (OSError, ValueError, UnlearnError) as exc:  # unreadable, not JSON, not a valid request
                problems[rid] = f"{path} is damaged ({shown(str(exc)).strip(chr(39))})"
            else:
                if request.id != rid:
                    problems[rid] = f"{path} holds request {request.id!r}, not {rid!r}"
                else:
                    out.append(request)
        return out, problems

    def record(self, request: ForgetRequest) -> None:
        """The request file first, then the index that names it (both atomic): a crash between the two leaves an
        unreferenced file, never an index naming a missing file."""
        kill_point("serve-before-request-file")
        atomic_write_json(self.request_file(request.id), request.to_dict())
        kill_point("serve-request-file-written")
        if request.id not in self.request_ids:  # a request posted again after its file was lost
            self.request_ids.append(request.id)
        self.save()
        kill_point("serve-state-written")

    def admin_token(self, given: str | None) -> str:
        if given:
            return given
        path = self.directory / "admin_token"
        if not path.is_file():
            atomic_write_text(path, secrets.token_urlsafe(32))
            os.chmod(path, 0o600)
        return path.read_text(encoding="utf-8").strip()


def _read_state(path: Path) -> dict[str, Any]:
    repair = (f"move {path} away and start again with --guards (and --request FILE for each request; their "
              f"copies are in {path.parent / 'requests'})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is damaged ({shown(str(exc)).strip(chr(39))}); {repair}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path}: not an unlearn serve state ({shown(found)}); {repair}")
    if not (isinstance(data.get("model"), str) and isinstance(data.get("guards"), list)
            and isinstance(data.get("requests"), list) and all(isinstance(r, str) for r in data["requests"])):
        raise ConfigError(f"{path} is damaged (model, guards or requests missing or of the wrong type); {repair}")
    return data


def _number(body: dict, key: str, default, low, high, kind=float):
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"'{key}' must be {'an integer' if kind is int else 'a number'}")
    if not low <= value <= high:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"'{key}' must be between {low} and {high}, got {value}")
    return kind(value)


def _messages(body: dict) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "'messages' must be a non-empty list of {role, content}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(
                m.get("content"), str):
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"messages[{i}] must be {{'role': system|user|assistant, "
                                                    "'content': string}")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "user":
        raise HTTPError(HTTPStatus.BAD_REQUEST, "the last message must be the user's")
    return out


class GuardServer:
    """The guarded model and its state, shared by the handler threads."""

    def __init__(self, guarded, state: ServeState, token: str, model_name: str, max_tokens: int = MAX_TOKENS,
                 max_body: int = MAX_BODY, unguarded: dict[str, str] | None = None):
        self.guarded, self.state, self.token = guarded, state, token
        self.model_name, self.max_tokens, self.max_body = model_name, max_tokens, max_body
        self.unguarded = dict(unguarded or {})  # id -> why: in the index, but its file did not load
        self.lock = threading.Lock()

    # --- endpoints ---------------------------------------------------------------------------------
    def settings(self, body: dict) -> dict[str, Any]:
        return {"max_tokens": _number(body, "max_tokens", 64, 1, self.max_tokens, int),
                "temperature": _number(body, "temperature", 0.0, 0.0, 2.0),
                "top_p": _number(body, "top_p", 1.0, 1e-6, 1.0),
                "n": _number(body, "n", 1, 1, MAX_N, int),
                "seed": _number(body, "seed", 0, 0, 2**31 - 1, int)}

    def complete(self, prompt: str, s: dict[str, Any]) -> list[tuple[str, str, int]]:
        """(text, finish reason, completion tokens) for each of the n choices."""
        from ..metrics.generation import generate_answers, sample_answers

        tokenizer = self.guarded.tokenizer
        with self.lock:
            if s["temperature"] == 0.0:
                g = generate_answers(self.guarded, tokenizer, [], 1, s["max_tokens"], prompts=[prompt])[0]
                texts = [(g.text, len(g.token_ids))] * s["n"]
            else:
                samples = sample_answers(self.guarded, tokenizer, [prompt], s["n"], s["temperature"], s["top_p"],
                                         s["n"], s["max_tokens"], s["seed"])[0]
                texts = [(t, len(tokenizer(t, add_special_tokens=False)["input_ids"])) for t in samples]
        return [(t, "length" if n >= s["max_tokens"] else "stop", n) for t, n in texts]

    def chat(self, body: dict) -> dict:
        from ..data.formatting import conversation_text

        s = self.settings(body)
        prompt = conversation_text(self.guarded.tokenizer, _messages(body))
        choices = self.complete(prompt, s)
        return self._response("chat.completion", prompt, choices, lambda t: {"message": {"role": "assistant",
                                                                                          "content": t}})

    def completion(self, body: dict) -> dict:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "'prompt' must be a non-empty string")
        choices = self.complete(prompt, self.settings(body))
        return self._response("text_completion", prompt, choices, lambda t: {"text": t})

    def _response(self, kind: str, prompt: str, choices, content) -> dict:
        prompt_tokens = len(self.guarded.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        completion_tokens = sum(n for _, _, n in choices)
        return {"id": f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex[:24]}",
                "object": kind, "created": int(time.time()), "model": self.model_name,
                "choices": [{"index": i, **content(t), "finish_reason": f} for i, (t, f, _) in enumerate(choices)],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def add_request(self, body: dict) -> tuple[HTTPStatus, dict]:
        try:
            request = request_from_dict(body, "request")
        except UnlearnError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        with self.lock:
            known = {r.id: r for r in self.guarded.requests}
            if request.id in known:
                if known[request.id].content_hash() != request.content_hash():
                    raise HTTPError(HTTPStatus.CONFLICT, f"request id {request.id!r} is already guarded with "
                                                         "different content; give the new request another id",
                                    "conflict")
                return HTTPStatus.OK, {"id": request.id, "status": "already guarded",
                                       "requests": len(self.guarded.requests)}
            start = time.perf_counter()
            self.guarded.add_request(request)
            took = time.perf_counter() - start
            self.state.record(request)
            self.unguarded.pop(request.id, None)
        return HTTPStatus.CREATED, {"id": request.id, "status": "guarded", "requests": len(self.guarded.requests),
                                    "took_ms": round(1000 * took, 1)}

    def health(self) -> dict:
        return {"status": "degraded" if self.unguarded else "ok", "model": self.model_name,
                "guards": [g["name"] for g in self.state.guards], "requests": len(self.guarded.requests),
                "unguarded": [{"id": rid, "problem": why} for rid, why in self.unguarded.items()]}


def make_handler(server: GuardServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "unlearn-serve"

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def _send(self, status: HTTPStatus, payload: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except ConnectionError as exc:  # the client went away: nothing to answer, nothing to crash
                self.close_connection = True
                log.warning("client %s disconnected before the %d response was sent (%s)",
                            self.client_address[0], int(status), type(exc).__name__)

        def _error(self, error: HTTPError) -> None:
            if error.status in (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.BAD_REQUEST, HTTPStatus.LENGTH_REQUIRED):
                self.close_connection = True  # the unread body must not be taken for the next request
            self._send(error.status, {"error": {"message": error.message, "type": error.kind,
                                                "code": int(error.status)}})

        def _authorised(self) -> None:
            given = self.headers.get("Authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {server.token}".encode()):
                raise HTTPError(HTTPStatus.UNAUTHORIZED, "the admin endpoints need 'Authorization: Bearer TOKEN' "
                                                         "(the token given to unlearn serve, or DIR/admin_token)",
                                "authentication_error")

        def _body(self) -> dict:
            length = self.headers.get("Content-Length")
            if length is None:
                raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
            try:
                size = int(length)
            except ValueError:
                raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}") from None
            if size < 0:
                raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}")
            if size > server.max_body:
                raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                f"the body has {size} bytes; the limit is {server.max_body}")
            raw = self.rfile.read(size)
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise HTTPError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON ({exc})") from None
            if not isinstance(body, dict):
                raise HTTPError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return body

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            routes = {("GET", "/health"): lambda: (HTTPStatus.OK, server.health()),
                      ("GET", "/v1/models"): lambda: (HTTPStatus.OK, {"object": "list", "data": [
                          {"id": server.model_name, "object": "model", "owned_by": "unlearn"}]}),
                      ("POST", "/v1/chat/completions"): lambda: (HTTPStatus.OK, server.chat(self._body())),
                      ("POST", "/v1/completions"): lambda: (HTTPStatus.OK, server.completion(self._body())),
                      ("POST", "/admin/requests"): lambda: self._admin(lambda: server.add_request(self._body())),
                      ("GET", "/admin/requests"): lambda: self._admin(lambda: (HTTPStatus.OK, {"requests": [
                          {"id": r.id, "target": r.target, "kind": r.kind} for r in server.guarded.requests],
                          "unguarded": [{"id": rid, "problem": why} for rid, why in server.unguarded.items()]}))}
            try:
                route = routes.get((method, path))
                if route is None:
                    known = {p for _, p in routes}
                    if path in known:
                        raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")
                    raise HTTPError(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see /v1/chat/completions, "
                                                          "/v1/completions, /v1/models, /health, /admin/requests")
                status, payload = route()
                self._send(status, payload)
            except HTTPError as exc:
                self._error(exc)
            except Exception as exc:  # a failing call is reported, never fatal to the server
                self._error(HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}", "server_error"))

        def _admin(self, action):
            self._authorised()
            return action()

        def do_GET(self):  # noqa: N802 - the base class's name
            self._dispatch("GET")

        def do_POST(self):  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self):  # noqa: N802
            self._dispatch("PUT")

        def do_DELETE(self):  # noqa: N802
            self._dispatch("DELETE")

    return Handler


def build_server(model_name: str, state_dir: str | Path, guards: list[dict[str, Any]] | None = None,
                 requests: list[ForgetRequest] = (), token: str | None = None, host: str = "127.0.0.1",
                 port: int = 8000, max_tokens: int = MAX_TOKENS, max_body: int = MAX_BODY, model=None,
                 tokenizer=None, progress: bool = False) -> tuple[GuardHTTPServer, GuardServer]:
    """The HTTP server (not yet serving) and its GuardServer. `model`/`tokenizer` skip loading `model_name`.
    The server holds the state directory's lock until `server_close()`: a second server on it is refused."""
    if Path(state_dir).exists() and not Path(state_dir).is_dir():
        raise ConfigError(f"--state {state_dir} is a file; give a directory")
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    lock = StateLock(Path(state_dir))  # a second server on the same state would lose the first one's requests
    lock.acquire()
    try:
        return _build_server(model_name, state_dir, guards, requests, token, host, port, max_tokens, max_body,
                             model, tokenizer, lock)
    except BaseException:
        lock.release()
        raise


class GuardHTTPServer(ThreadingHTTPServer):
    """The threaded HTTP server; closing it releases the state directory's lock."""

    daemon_threads = True
    state_lock: StateLock | None = None

    def handle_error(self, request, client_address) -> None:  # one log line instead of a traceback
        import sys

        exc = sys.exc_info()[1]
        log.warning("connection from %s ended with %s: %s", client_address[0], type(exc).__name__,
                    shown(str(exc)))

    def server_close(self) -> None:
        super().server_close()
        if self.state_lock is not None:
            self.state_lock.release()
            self.state_lock = None


def _build_server(model_name, state_dir, guards, requests, token, host, port, max_tokens, max_body, model,
                  tokenizer, lock) -> tuple[GuardHTTPServer, GuardServer]:
    from ..models.loading import load_model
    from .base import guarded_model

    state = ServeState.open(state_dir, model_name, guards)
    if model is None:
        model, tokenizer = load_model(model_name)
    loaded, problems = state.load_requests()
    for rid, why in problems.items():
        log.warning("request %r is NOT guarded: %s; POST it again to /admin/requests (same id) to guard it",
                    rid, why)
    guarded = guarded_model(model.eval(), tokenizer, state.guards, loaded)
    guarded.index.prepare()  # the first request added over HTTP then costs what any other does
    app = GuardServer(guarded, state, state.admin_token(token), model_name, max_tokens, max_body, problems)
    for request in requests:
        app.add_request(request.to_dict())
    try:
        httpd = GuardHTTPServer((host, port), make_handler(app))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    httpd.state_lock = lock
    return httpd, app
