"""A fake LLM upstream on loopback that answers like OpenAI, Azure OpenAI and Anthropic,
and fails, per model name, in every way a real one fails.

Endpoints: ``POST /v1/chat/completions`` (streaming or not), ``POST /v1/embeddings``,
``GET /v1/models``; Azure's ``POST /openai/deployments/{deployment}/chat/completions``
and ``.../embeddings`` (need ``?api-version=`` and an ``api-key`` header); Anthropic's
``POST /v1/messages`` (needs ``x-api-key`` and ``anthropic-version``). Every response
carries ``x-fake-upstream: 1``. Answers are deterministic (see ``answers``).

The model name (Azure: the deployment) picks the behaviour; grammar in ``scenarios``:

==========================  ========================================================
``ok``, any ordinary name   answer normally
``delay:MS``                wait MS ms, then answer
``first-token-delay:MS``    streams: headers at once, first chunk MS ms later
``no-usage``                never report usage, even when asked
``no-done``                 streams: everything but the terminator (``[DONE]``,
                            Anthropic's ``message_stop``), then end cleanly
``429``                     429 ``rate_limit_exceeded``, no Retry-After
``429-retry-after:S``       429 with ``Retry-After: S``
``500-once``                the first call per name since the last reset: 500; then ok
``503``                     503 for ever
``flap:DOWN_S``             503 for DOWN_S s from the first call to the name, then ok
``reset``                   TCP RST before any header
``hang``                    never answer; returns when the client disconnects
``cut:N``                   streams: N content chunks, then the connection closes
                            mid-body (no ``[DONE]``); non-streaming: half the body
``stall:N``                 as ``cut:N`` but the connection stays open, silent
``malformed``               streams: a chunk whose data is not JSON after 2 content
                            chunks, then the rest; non-streaming: half a JSON body
``error-mid-stream``        streams: 2 content chunks, then an error (OpenAI:
                            ``data: {"error": …}``; Anthropic: ``event: error``)
``bad-chunk``               OpenAI streams: after 2 content chunks, a chunk that is
                            JSON of the wrong shape (its delta a string), then the rest
``leak``                    answer with personal data the prompt never held (in the
                            text, or in the tool call's arguments)
``prompt-tokens:N``         (a modifier) report N prompt tokens in usage
``crlf``, ``split:SEED`` …  (modifiers) streams: the liberties an event stream may
                            take (CRLF or CR line ends, keep-alive comments, JSON over
                            several ``data:`` lines, ``[DONE]`` twice, no finish
                            reason, bytes cut anywhere); see ``quirks``
``context-length``          400 ``context_length_exceeded`` (Anthropic: "prompt is too
                            long")
``content-policy``          OpenAI: 400 ``content_policy_violation``; Azure: 400
                            ``content_filter`` with Azure's ``innererror``; Anthropic:
                            200 with ``stop_reason: "refusal"``
==========================  ========================================================

Modifiers combine with one fault: ``delay:200+cut:3``. A malformed scenario name is a
400 ``unknown_scenario``. ``error-mid-stream`` and ``no-done`` leave non-streaming
answers alone; there ``first-token-delay`` delays the body after the headers.

Control: ``POST /_control/reset`` (``?recover=0`` as ``reset(recover=False)``) and
``GET /_control/requests`` (the request log, secrets included). In Python::

    with FakeUpstream() as up:          # uvicorn in a thread, ephemeral port
        up.base_url                     # http://127.0.0.1:PORT (append /v1 for OpenAI)
        up.requests                     # [RecordedRequest(model, path, headers, body, …)]
        up.count("500-once")            # calls to that model name since the last reset
        up.reset()                      # forget the log and per-name state

For the benchmark: ``python -m bastion.testing.upstream --host 127.0.0.1 --port 9999``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import itertools
import json
import socket
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import answers
from .answers import JSON, Frames
from .quirks import reshape
from .scenarios import Scenario, ScenarioError, parse
from .wire import Ending, Wire

Flavour = Literal["openai", "azure", "anthropic"]

AZURE_CONTENT_FILTER = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry. To learn more about our "
    "content filtering policies please read our documentation: "
    "https://go.microsoft.com/fwlink/?linkid=2198766"
)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    model: str | None
    headers: dict[str, str]
    body: Any  # the decoded JSON body, or None
    body_size: int
    time: float  # time.time() on arrival

    def to_json(self) -> JSON:
        return asdict(self)


@dataclass
class State:
    """Per-name state and the request log; shared by the server's loop and the tests'
    thread, hence the lock."""

    max_log: int = 10_000
    lock: threading.Lock = field(default_factory=threading.Lock)
    log: collections.deque[RecordedRequest] = field(init=False)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    outages: dict[str, float] = field(default_factory=dict)  # flap name -> end (monotonic)
    recovered: set[str] = field(default_factory=set)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.log = collections.deque(maxlen=self.max_log)

    def record(self, request: RecordedRequest) -> int:
        """Log a request; the number of calls to its model name so far, this one included."""
        with self.lock:
            self.log.append(request)
            if request.model is None:
                return 0
            self.calls[request.model] += 1
            return self.calls[request.model]

    def down(self, model: str, down_s: float) -> bool:
        now = time.monotonic()
        with self.lock:
            if model in self.recovered:
                return False
            return now < self.outages.setdefault(model, now + down_s)

    def reset(self, *, recover: bool = True) -> None:
        """Forget the log and per-name state. With ``recover``, a flap outage in progress
        ends (the name answers until the next reset), so a test can say "the upstream
        recovers"; without, its next call starts a new outage."""
        now = time.monotonic()
        with self.lock:
            self.log.clear()
            self.calls.clear()
            self.recovered = (
                {m for m, end in self.outages.items() if now < end} if recover else set()
            )
            self.outages.clear()

    def next_id(self) -> str:
        return f"fake{next(self.ids)}"


# --- responses -----------------------------------------------------------------------------


HEADERS = {"x-fake-upstream": "1"}
SSE = {**HEADERS, "content-type": "text/event-stream", "cache-control": "no-cache"}


def error(
    flavour: Flavour,
    status: int,
    kind: str,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error in the flavour's shape; ``kind`` is OpenAI's ``type``, mapped for Anthropic."""
    if flavour == "anthropic":
        anthropic_type = {
            "requests": "rate_limit_error",
            "server_error": "api_error",
            "invalid_request_error": "invalid_request_error",
            "authentication_error": "authentication_error",
        }.get(kind, "api_error")
        body = answers.anthropic_error(anthropic_type, message)
    elif flavour == "azure" and kind == "authentication_error":
        body = {"error": {"code": str(status), "message": message}}
    else:
        body = answers.openai_error(message, kind, code, param)
    return JSONResponse(body, status, headers={**HEADERS, **(headers or {})})


def fault_response(
    state: State,
    flavour: Flavour,
    scenario: Scenario,
    model: str,
    calls: int,
    body: Mapping[str, Any],
) -> Response | Wire | None:
    """The response a fault gives before any answer is made, if it gives one."""
    fault = scenario.fault
    if fault == "429" or fault == "429-retry-after":
        retry = {"retry-after": str(scenario.count)} if fault == "429-retry-after" else None
        return error(
            flavour,
            429,
            "requests",
            f"Rate limit reached for {model} (fake upstream)",
            code="rate_limit_exceeded",
            headers=retry,
        )
    if (
        (fault == "500-once" and calls == 1)
        or fault == "503"
        or (fault == "flap" and state.down(model, scenario.param))
    ):
        status = 500 if fault == "500-once" else 503
        message = (
            "The server had an error while processing your request. Sorry about that!"
            if status == 500
            else "The server is overloaded or not ready yet."
        )
        return error(flavour, status, "server_error", message)
    if fault in ("reset", "hang"):
        ending: Ending = "reset" if fault == "reset" else "hang"
        return Wire(0, {}, closing=state.closing, ending=ending)
    if fault == "context-length":
        tokens = answers.prompt_tokens(body)
        if flavour == "anthropic":
            return error(
                flavour,
                400,
                "invalid_request_error",
                f"prompt is too long: {tokens + 200_000} tokens > 200000 maximum",
            )
        return error(
            flavour,
            400,
            "invalid_request_error",
            "This model's maximum context length is 8192 tokens. However, your messages "
            f"resulted in {tokens + 8192} tokens. Please reduce the length of the messages.",
            code="context_length_exceeded",
            param="messages",
        )
    if fault == "content-policy" and flavour == "azure":
        result = {
            name: {
                "filtered": name == "violence",
                "severity": "medium" if name == "violence" else "safe",
            }
            for name in ("hate", "self_harm", "sexual", "violence")
        }
        azure = {
            "error": {
                "message": AZURE_CONTENT_FILTER,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": result,
                },
            }
        }
        return JSONResponse(azure, 400, headers=HEADERS)
    if fault == "content-policy" and flavour == "openai":
        return error(
            flavour,
            400,
            "invalid_request_error",
            "Your request was rejected as a result of our safety system.",
            code="content_policy_violation",
        )
    return None


def play_body(state: State, scenario: Scenario, payload: bytes, headers: Mapping[str, str]) -> Wire:
    """A complete JSON body, or a broken one for ``cut``, ``stall`` and ``malformed``."""
    fault, length = scenario.fault, len(payload)
    ending: Ending = "end"
    if fault in ("cut", "stall", "malformed"):
        payload = payload[: len(payload) // 2]
        ending = "close" if fault == "cut" else "stall" if fault == "stall" else "end"
        length = length if ending != "end" else len(payload)
    headers = {
        "content-type": "application/json",
        **HEADERS,
        **headers,
        "content-length": str(length),
    }
    return Wire(
        200,
        headers,
        [payload],
        closing=state.closing,
        ending=ending,
        first_delay_s=scenario.first_token_delay_s,
    )


def split_seed(scenario: Scenario, body: Mapping[str, Any]) -> int | None:
    """``split:SEED``'s cuts depend on the request too: one model name, many cuttings."""
    if scenario.split is None:
        return None
    return zlib.crc32(json.dumps(body.get("messages"), sort_keys=True).encode()) ^ scenario.split


def play_stream(
    state: State, scenario: Scenario, stream: Frames, flavour: Flavour, body: Mapping[str, Any]
) -> Wire:
    frames, fault = list(stream.frames), scenario.fault
    ending: Ending = "end"
    if scenario.no_done:
        frames.pop()
    early = stream.first + min(2, stream.content)
    if fault in ("cut", "stall"):
        frames = frames[: min(stream.first + scenario.count, len(stream.frames) - 1)]
        ending = "close" if fault == "cut" else "stall"
    elif fault == "malformed":
        bad = answers.ANTHROPIC_MALFORMED if flavour == "anthropic" else answers.OPENAI_MALFORMED
        frames.insert(early, bad)
    elif fault == "bad-chunk" and flavour != "anthropic":
        frames.insert(early, answers.OPENAI_BAD_CHUNK)
    elif fault == "error-mid-stream":
        failure = (
            answers.anthropic_stream_error()
            if flavour == "anthropic"
            else answers.openai_stream_error()
        )
        frames = [*frames[:early], failure]
    return Wire(
        200,
        SSE,
        reshape(frames, scenario.quirks, split_seed(scenario, body)),
        closing=state.closing,
        ending=ending,
        first_delay_s=scenario.first_token_delay_s,
    )


# --- routes ---------------------------------------------------------------------------------


async def _admit(
    request: Request,
    flavour: Flavour,
    model: str | None = None,
) -> tuple[State, JSON, str, Scenario, int] | Response:
    """Read, record and check a request: (state, body, model, scenario, calls) or an error."""
    state: State = request.app.state.upstream
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if model is None and isinstance(body, dict) and isinstance(body.get("model"), str):
        model = body["model"]
    calls = state.record(
        RecordedRequest(
            request.method,
            request.url.path,
            request.url.query,
            model,
            dict(request.headers),
            body,
            len(raw),
            time.time(),
        )
    )
    if not isinstance(body, dict):
        return error(flavour, 400, "invalid_request_error", "The body must be a JSON object.")
    if flavour == "azure":
        if "api-version" not in request.query_params:
            return error(
                flavour,
                404,
                "invalid_request_error",
                "Resource not found (the api-version query parameter is missing)",
            )
        if not request.headers.get("api-key"):
            return error(
                flavour,
                401,
                "authentication_error",
                "Access denied due to missing subscription key. Make sure to include "
                "subscription key when making requests to an API.",
            )
    if flavour == "anthropic":
        if not request.headers.get("x-api-key"):
            return error(flavour, 401, "authentication_error", "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            return error(
                flavour, 400, "invalid_request_error", "anthropic-version: header is required"
            )
    if model is None:
        return error(
            flavour,
            400,
            "invalid_request_error",
            "you must provide a model parameter",
            param="model",
        )
    try:
        scenario = parse(model)
    except ScenarioError as exc:
        return error(
            flavour,
            400,
            "invalid_request_error",
            f"fake upstream: {exc}",
            code="unknown_scenario",
            param="model",
        )
    if scenario.delay_s:
        await asyncio.sleep(scenario.delay_s)
    return state, body, model, scenario, calls


async def _chat(request: Request, flavour: Flavour, model: str | None = None) -> Any:
    admitted = await _admit(request, flavour, model)
    if isinstance(admitted, Response):
        return admitted
    state, body, model, scenario, calls = admitted
    early = fault_response(state, flavour, scenario, model, calls, body)
    if early is not None:
        return early
    said = answers.answer(body)
    if scenario.fault == "leak":
        said = answers.leaking(said)
    if scenario.prompt_tokens:
        said = dataclasses.replace(said, prompt_tokens=scenario.prompt_tokens)
    mid = state.next_id()
    if flavour == "anthropic":
        refusal = scenario.fault == "content-policy"
        if body.get("stream") is True and not refusal:
            return play_stream(
                state,
                scenario,
                answers.anthropic_stream("msg_" + mid, model, said),
                flavour,
                body,
            )
        message = answers.anthropic_message("msg_" + mid, model, said, refusal=refusal)
        return play_body(state, scenario, answers.dumps(message), {"request-id": "req_" + mid})
    usage = not scenario.no_usage
    if body.get("stream") is True:
        options = body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        frames = answers.openai_stream(
            "chatcmpl-" + mid, model, said, usage=asked and usage, usage_asked=asked
        )
        return play_stream(state, scenario, frames, flavour, body)
    completion = answers.openai_completion("chatcmpl-" + mid, model, said, usage=usage)
    return play_body(state, scenario, answers.dumps(completion), {"x-request-id": "req_" + mid})


async def _embeddings(request: Request, flavour: Flavour, model: str | None = None) -> Any:
    admitted = await _admit(request, flavour, model)
    if isinstance(admitted, Response):
        return admitted
    state, body, model, scenario, calls = admitted
    early = fault_response(state, flavour, scenario, model, calls, body)
    if early is not None:
        return early
    out = answers.embeddings(model, body)
    if scenario.no_usage:
        del out["usage"]
    return play_body(state, scenario, answers.dumps(out), {})


async def openai_chat(request: Request) -> Any:
    return await _chat(request, "openai")


async def openai_embeddings(request: Request) -> Any:
    return await _embeddings(request, "openai")


async def azure_chat(request: Request) -> Any:
    return await _chat(request, "azure", request.path_params["deployment"])


async def azure_embeddings(request: Request) -> Any:
    return await _embeddings(request, "azure", request.path_params["deployment"])


async def anthropic_messages(request: Request) -> Any:
    return await _chat(request, "anthropic")


async def models(request: Request) -> Response:
    names = ["ok", "delay:60", "delay:1500", "500-once", "503", "429", "cut:3", "stall:3"]
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "fake-upstream"} for n in names]
    return JSONResponse({"object": "list", "data": data}, headers=HEADERS)


async def control_reset(request: Request) -> Response:
    request.app.state.upstream.reset(recover=request.query_params.get("recover") != "0")
    return JSONResponse({"reset": True}, headers=HEADERS)


async def control_requests(request: Request) -> Response:
    state: State = request.app.state.upstream
    with state.lock:
        log = [r.to_json() for r in state.log]
    return JSONResponse(log, headers=HEADERS)


def create_app(state: State | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", openai_chat, methods=["POST"]),
            Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
            Route(
                "/openai/deployments/{deployment}/chat/completions", azure_chat, methods=["POST"]
            ),
            Route(
                "/openai/deployments/{deployment}/embeddings", azure_embeddings, methods=["POST"]
            ),
            Route("/_control/reset", control_reset, methods=["POST"]),
            Route("/_control/requests", control_requests, methods=["GET"]),
        ]
    )
    app.state.upstream = state or State()
    return app


# --- serving ----------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """Uvicorn, but hung and stalled requests give up when the server stops, so that
    shutdown does not wait for clients that never leave."""

    def __init__(self, config: uvicorn.Config, state: State) -> None:
        super().__init__(config)
        self.upstream = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.upstream.closing.set()
        await super().shutdown(sockets)


def _config(app: Starlette, **kwargs: Any) -> uvicorn.Config:
    # log_config=None and log_level=None: leave the process's logging alone (the tests'
    # own uvicorn logs); access_log=False: no per-request work at 500 requests/s.
    return uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        access_log=False,
        log_config=None,
        log_level=None,
        timeout_graceful_shutdown=5,
        **kwargs,
    )


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


class FakeUpstream:
    """The fake upstream served by uvicorn in a background thread with its own loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, max_log: int = 10_000) -> None:
        self.host, self._port = host, port
        self.state = State(max_log=max_log)
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.log)

    def count(self, model: str) -> int:
        with self.state.lock:
            return self.state.calls[model]

    def reset(self, *, recover: bool = True) -> None:
        self.state.reset(recover=recover)

    def start(self) -> Self:
        self.state.closing = asyncio.Event()  # a fresh one: a previous stop() set it
        self._sock = _listen(self.host, self._port)
        self._port = self._sock.getsockname()[1]
        self._server = _Server(_config(create_app(self.state)), self.state)
        server, sock = self._server, self._sock
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="fake-upstream",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI/Azure/Anthropic upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    sock = _listen(args.host, args.port)
    state = State()
    print(f"fake upstream on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    try:
        _Server(_config(create_app(state)), state).run(sockets=[sock])
    finally:
        sock.close()


if __name__ == "__main__":
    main()
