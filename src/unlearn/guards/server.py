"""`unlearn serve`: a guarded model behind an OpenAI-compatible HTTP server (Starlette on uvicorn).

    POST /v1/chat/completions   {"messages": [...], "max_tokens", "temperature", "top_p", "n", "seed",
                                 "stream", "stream_options": {"include_usage"}}
    POST /v1/completions        {"prompt": "...", same settings}
    GET  /v1/models, GET /health
    POST /admin/requests        a forget request (the request-file schema), with "Authorization: Bearer TOKEN";
                                it guards the next call
    GET  /admin/requests        the guarded requests (same token)

With `"stream": true` the answer comes as server-sent events in OpenAI's chunk format (one chunk per token,
then `data: [DONE]`). The answer is generated and guarded whole before the first event: a guard that refuses
judges the full answer, so no prefix of a refused answer is ever sent.

The state directory keeps what a restart needs: `state.json` (model, guard settings, the guarded requests'
ids in order), `requests/<id>.json` (each request as received) and `admin_token` (mode 0600) when no token
is given. Every file is written atomically, a request before the index that names it, so a crash at any
point leaves a state that opens. On start every reference is checked: a request whose file is missing or
damaged is logged in one line, listed under "unguarded" in /health and GET /admin/requests, and guarded
again when it is posted again; the rest are served. A damaged state.json is one error that says how to
repair it. A running server holds the directory's lock (`lock`): a second server on it is refused. Guards
that learn per request (embedding_corruption's strength) learn again when the server starts.

The server binds to 127.0.0.1 by default. Calls run one at a time on the model (a lock; the HTTP side is
asynchronous, model calls run in worker threads), bodies over `max_body` bytes are refused with 413,
malformed JSON or settings with 400, a missing or wrong token with 401, and any failure inside a call with
500, without stopping the server; a client that disconnects before its answer is one log line.
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


def text_pieces(tokenizer, text: str) -> list[str]:
    """`text` cut where its tokens end, for streaming: the pieces join to exactly `text` (a token that decodes
    to part of a character waits for the next one)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces, emitted = [], 0
    for i in range(1, len(ids) + 1):
        prefix = tokenizer.decode(ids[:i])
        if len(prefix) > emitted and text.startswith(prefix):
            pieces.append(text[emitted:len(prefix)])
            emitted = len(prefix)
    if emitted < len(text):
        pieces.append(text[emitted:])
    return pieces


def stream_events(tokenizer, response: dict, include_usage: bool) -> list[str]:
    """A finished completion as the server-sent events of an OpenAI stream: per choice a first chunk (the role,
    for chat), one chunk per token piece, a last chunk with the finish reason; the usage chunk when asked; and
    `data: [DONE]`."""
    chat = response["object"] == "chat.completion"
    head = {"id": response["id"], "object": "chat.completion.chunk" if chat else "text_completion",
            "created": response["created"], "model": response["model"]}

    def chunk(index: int, content: str | None, finish: str | None, role: bool = False) -> dict:
        if chat:
            delta = ({"role": "assistant", "content": ""} if role else
                     {} if content is None else {"content": content})
            return {**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
        return {**head, "choices": [{"index": index, "text": content or "", "finish_reason": finish}]}

    chunks = []
    for choice in response["choices"]:
        i = choice["index"]
        text = choice["message"]["content"] if chat else choice["text"]
        if chat:
            chunks.append(chunk(i, None, None, role=True))
        chunks += [chunk(i, piece, None) for piece in text_pieces(tokenizer, text)]
        chunks.append(chunk(i, None, choice["finish_reason"]))
    if include_usage:
        chunks.append({**head, "choices": [], "usage": response["usage"]})
    return [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]


def _stream_settings(body: dict) -> tuple[bool, bool]:
    """(stream?, include usage?) from the body's `stream` and `stream_options`."""
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "'stream' must be true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "'stream_options' must be {'include_usage': true|false}")
    return stream, bool(options.get("include_usage", False))


ENDPOINTS = "/v1/chat/completions, /v1/completions, /v1/models, /health, /admin/requests"


def _error_response(error: HTTPError):
    from starlette.responses import JSONResponse

    headers = {"Connection": "close"} if error.status in (HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                                         HTTPStatus.BAD_REQUEST) else None
    return JSONResponse({"error": {"message": error.message, "type": error.kind, "code": int(error.status)}},
                        status_code=int(error.status), headers=headers)


async def _read_body(request, limit: int) -> dict:
    """The JSON object in the body, at most `limit` bytes (413 beyond, whether the length is declared or not)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length!r}")
        if int(length) > limit:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body has {length} bytes; the limit is {limit}")
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > limit:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body has over {limit} bytes; the limit "
                                                                 f"is {limit}")
    try:
        body = json.loads(bytes(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    return body


def make_app(server: GuardServer):
    """The ASGI application (Starlette) over a GuardServer. Model calls run in worker threads, one at a time
    (GuardServer's lock). A streamed answer is generated whole before its first event: the guards judge the whole
    answer, so no part of one they would refuse is ever sent."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def authorise(request) -> None:
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {server.token}".encode()):
            raise HTTPError(HTTPStatus.UNAUTHORIZED, "the admin endpoints need 'Authorization: Bearer TOKEN' "
                                                     "(the token given to unlearn serve, or DIR/admin_token)",
                            "authentication_error")

    def endpoint(action, admin: bool = False, body: bool = False, streams: bool = False):
        """An endpoint running `action(body) -> (status, payload)` in a worker thread; every failure is a JSON
        error, never fatal to the server."""
        async def handle(request):
            try:
                if admin:
                    authorise(request)
                given = await _read_body(request, server.max_body) if body else {}
                stream, usage = _stream_settings(given) if streams else (False, False)
                status, payload = await run_in_threadpool(action, given)
            except HTTPError as exc:
                return _error_response(exc)
            except Exception as exc:  # a failing call is reported, never fatal to the server
                return _error_response(HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}",
                                                 "server_error"))
            if await request.is_disconnected():  # nothing to answer, nothing to crash
                log.warning("client %s disconnected before the %d response was sent",
                            request.client.host if request.client else "?", int(status))
                return Response(status_code=int(status))
            if stream:
                events = stream_events(server.guarded.tokenizer, payload, usage)
                return StreamingResponse(iter(events), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache"})
            return JSONResponse(payload, status_code=int(status))
        return handle

    def listed(_body) -> tuple[HTTPStatus, dict]:
        return HTTPStatus.OK, {"requests": [{"id": r.id, "target": r.target, "kind": r.kind}
                                            for r in server.guarded.requests],
                               "unguarded": [{"id": rid, "problem": why} for rid, why in server.unguarded.items()]}

    def models(_body) -> tuple[HTTPStatus, dict]:
        return HTTPStatus.OK, {"object": "list", "data": [{"id": server.model_name, "object": "model",
                                                           "owned_by": "unlearn"}]}

    admin_post = endpoint(server.add_request, admin=True, body=True)
    admin_get = endpoint(listed, admin=True)

    async def admin_requests(request):
        return await (admin_post if request.method == "POST" else admin_get)(request)

    routes = [
        Route("/health", endpoint(lambda _: (HTTPStatus.OK, server.health())), methods=["GET"]),
        Route("/v1/models", endpoint(models), methods=["GET"]),
        Route("/v1/chat/completions", endpoint(lambda b: (HTTPStatus.OK, server.chat(b)), body=True, streams=True),
              methods=["POST"]),
        Route("/v1/completions", endpoint(lambda b: (HTTPStatus.OK, server.completion(b)), body=True, streams=True),
              methods=["POST"]),
        Route("/admin/requests", admin_requests, methods=["GET", "POST"]),
    ]

    async def routing_error(request, exc: StarletteHTTPException):
        path = request.url.path
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            return _error_response(HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not allowed on "
                                                                            f"{path}"))
        if exc.status_code == HTTPStatus.NOT_FOUND:
            return _error_response(HTTPError(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see {ENDPOINTS}"))
        return _error_response(HTTPError(HTTPStatus(exc.status_code), str(exc.detail)))

    app = Starlette(routes=routes, exception_handlers={StarletteHTTPException: routing_error})
    app.router.redirect_slashes = False
    return app


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


class GuardHTTPServer:
    """The ASGI app served by uvicorn on a socket bound at construction (so the port is known and a taken port is
    an error before serving). `serve_forever()` blocks; `shutdown()` (from another thread) stops it;
    `server_close()` closes the socket and releases the state directory's lock."""

    def __init__(self, address: tuple[str, int], app, state_lock: StateLock | None = None):
        import socket

        import uvicorn

        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
            self.socket.listen(2048)  # clients queue from now on, before uvicorn starts accepting
        except OSError:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()
        self.state_lock = state_lock
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5)
        self._uvicorn = uvicorn.Server(config)
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        self._stopped.clear()
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        self._uvicorn.should_exit = True
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()
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
        httpd = GuardHTTPServer((host, port), make_app(app), lock)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    return httpd, app
