"""Sending a provider's request and reading its answer: pooled HTTP, timeouts, streams.

One pooled ``aiohttp.ClientSession`` per event loop serves every upstream. aiohttp
rather than httpx (DESIGN.md names httpx): on the gateway's hot path httpx cost about
five times the CPU per upstream call (257 µs against 55 µs, measured on this machine),
and its connection pool rescans every connection per request, so latency grew with
load until it collapsed. Every failure becomes an :class:`UpstreamFailure` whose
``kind`` says what happened (connect, timeout, first-token timeout, stall, malformed,
or the upstream's own error classified by its provider); retries, fallbacks and
breakers are decided by the caller (:mod:`bastion.gateway.resilience`), never here.

Streams are read event by event with two clocks: the first event must arrive within
the first-token timeout (headers included), each later one within the stall timeout.
Server-sent events are decoded by :class:`SSEDecoder` (the WHATWG rules, a few lines):
aiohttp has no client-side decoder, and httpx-sse's is bound to httpx responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bastion import jsonio
from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import JSON, HttpRequest, Provider, StreamTranslator, Target

#: Connections kept open to all upstreams together; the rest wait for one.
MAX_CONNECTIONS = 2000
#: How long an idle upstream connection is kept for reuse: under the 5 s after which
#: uvicorn (vLLM), llama.cpp's server and Node close theirs, so Bastion always closes
#: first. Kept longer, a call sent just as the server closed its end met a reset, paid a
#: retry's backoff and counted against the upstream's breaker (the gateway bench saw 10
#: in 12,301 calls after its busiest point). The openai SDK (httpx, 5 s) and Node's fetch
#: (undici, 4 s) choose alike; a call after a longer pause opens a new connection.
KEEPALIVE_S = 4.0


def _transport_failure(exc: BaseException, what: str, *, answered: bool = True) -> UpstreamFailure:
    """``answered``: the response had begun; a broken connection before it is a
    connection-level failure (the host, not the model, may be down)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamFailure(
            "connect", f"connecting to the upstream timed out ({what})", connection=True
        )
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS
        return UpstreamFailure(
            "connect", f"could not connect to the upstream ({what})", connection=True
        )
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return UpstreamFailure("timeout", f"the upstream did not answer in time ({what})")
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientOSError
        | ConnectionError,
    ):
        return UpstreamFailure(
            "connect", f"the upstream closed the connection ({what})", connection=not answered
        )
    return UpstreamFailure(
        "server_error", f"talking to the upstream failed ({what}): {type(exc).__name__}"
    )


_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def _body(request: HttpRequest) -> bytes:
    return jsonio.dumps(request.json)


def _headers(request: HttpRequest) -> dict[str, str]:
    return {"content-type": "application/json", **request.headers}


def _timeout(target: Target) -> aiohttp.ClientTimeout:
    cfg = target.config
    return aiohttp.ClientTimeout(
        total=None, connect=cfg.timeout_s, sock_connect=cfg.connect_timeout_s
    )


class Transport:
    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def session(self) -> aiohttp.ClientSession:
        """The running loop's session (made on first use: aiohttp binds it to a loop)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S, ttl_dns_cache=300
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                headers={"user-agent": "bastion-gateway"},
            )
            self._sessions[loop] = session
        return session

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def post_json(
        self, provider: Provider, target: Target, request: HttpRequest, limit_s: float
    ) -> JSON:
        """The upstream's JSON answer to a non-streamed request, or an UpstreamFailure."""
        session = self.session()
        answered = False
        try:
            async with (
                asyncio.timeout(limit_s),
                session.request(
                    request.method,
                    request.url,
                    data=_body(request),
                    headers=_headers(request),
                    timeout=_timeout(target),
                    allow_redirects=False,
                ) as response,
            ):
                answered = True
                status, headers = response.status, response.headers
                content = await response.read()
        except _ERRORS as exc:
            raise _transport_failure(exc, target.provider, answered=answered) from None
        if status >= 400:
            raise provider.classify_error(status, content, headers)
        try:
            data = jsonio.loads(content)
        except ValueError:
            raise UpstreamFailure(
                "malformed", "the upstream's answer is not JSON", upstream_status=status
            ) from None
        if not isinstance(data, dict):
            raise UpstreamFailure("malformed", "the upstream's answer is not a JSON object")
        return data

    async def open_stream(
        self,
        provider: Provider,
        target: Target,
        request: HttpRequest,
        *,
        first_token_s: float,
        stall_s: float,
    ) -> HttpChunkStream:
        """A stream whose response headers have arrived with a 2xx status."""
        session = self.session()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + first_token_s
        try:
            async with asyncio.timeout(first_token_s):
                response = await session.request(
                    request.method,
                    request.url,
                    data=_body(request),
                    headers=_headers(request),
                    timeout=_timeout(target),
                    allow_redirects=False,
                )
        except TimeoutError:
            raise UpstreamFailure(
                "first_token_timeout", f"no answer from the upstream within {first_token_s:g} s"
            ) from None
        except _ERRORS as exc:
            raise _transport_failure(exc, target.provider, answered=False) from None
        if response.status >= 400:
            try:
                body = await response.read()
            except _ERRORS:
                body = b""
            finally:
                response.release()
            raise provider.classify_error(response.status, body, response.headers)
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            # Some servers ignore ``stream``; a JSON answer is still an answer.
            try:
                body = await response.read()
            except _ERRORS as exc:
                raise _transport_failure(exc, "reading a JSON answer") from None
            finally:
                response.release()
            return HttpChunkStream.from_json(provider, target, body)
        return HttpChunkStream(
            response, provider.chat_stream(target), deadline=deadline, stall_s=stall_s, loop=loop
        )


class SSEDecoder:
    """Server-sent events from lines (the WHATWG event-stream rules).

    ``feed(line)`` takes one line without its line ending and returns an
    ``(event, data)`` pair when a blank line completes an event that carried data.
    Comments and the ``id`` and ``retry`` fields (reconnection state, which a one-shot
    LLM stream never uses) are skipped.
    """

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str | None, str] | None:
        if not line:
            if not self._data:
                self._event = None
                return None
            out = (self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return out
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or None
        return None

    def end(self) -> tuple[str | None, str] | None:
        """An event left open when the stream ended (its blank line never came)."""
        return self.feed("")


#: The longest line an upstream may send (a whole answer's tool-call arguments fit).
MAX_SSE_LINE = 16 * 1024 * 1024
_EOL = re.compile(rb"\r\n|\r|\n")


class SSELines:
    """Lines from an event stream's bytes as they arrive, split anywhere.

    The event-stream rules end a line with CRLF, LF or a lone CR (aiohttp's
    ``readline`` knows only LF, and refuses a line past 128 KiB); a CR at the end of
    one piece waits for the next, which may begin with its LF. Lines are decoded whole,
    so a character split between pieces is joined first.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._started = False

    def feed(self, data: bytes) -> list[str]:
        buffer = self._buffer + data
        lines: list[str] = []
        start = 0
        for match in _EOL.finditer(buffer):
            if match.group() == b"\r" and match.end() == len(buffer):
                break  # maybe the first half of a CRLF
            lines.append(self._decode(buffer[start : match.start()]))
            start = match.end()
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_SSE_LINE:
            raise UpstreamFailure("malformed", "the upstream sent a stream line over 16 MiB")
        return lines

    def end(self) -> list[str]:
        """The last line: one ended by a lone CR, or one the stream left without an end."""
        rest, self._buffer = self._buffer, b""
        if rest.endswith(b"\r"):
            return [self._decode(rest[:-1])]
        return [self._decode(rest)] if rest else []

    def _decode(self, raw: bytes) -> str:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UpstreamFailure("malformed", "the upstream's stream is not UTF-8") from None
        if not self._started:
            self._started = True
            line = line.removeprefix("\ufeff")  # a byte-order mark may open the stream
        return line


async def sse_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str | None, str]]:
    decoder = SSEDecoder()
    lines = SSELines()
    async for data in content.iter_any():
        for line in lines.feed(data):
            if (event := decoder.feed(line)) is not None:
                yield event
    for line in [*lines.end(), ""]:
        if (event := decoder.feed(line)) is not None:
            yield event


class ChunkStream:
    """OpenAI chunk dicts from one attempt, one at a time (``None`` at the end)."""

    done: bool = False

    async def next_chunk(self) -> JSON | None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class HttpChunkStream(ChunkStream):
    def __init__(
        self,
        response: aiohttp.ClientResponse | None,
        translator: StreamTranslator | None,
        *,
        deadline: float = 0.0,
        stall_s: float = 60.0,
        loop: asyncio.AbstractEventLoop | None = None,
        ready: list[JSON] | None = None,
    ) -> None:
        self._response = response
        self._translator = translator
        self._events: AsyncIterator[tuple[str | None, str]] | None = (
            sse_events(response.content) if response is not None else None
        )
        self._first_deadline = deadline
        self._stall_s = stall_s
        self._loop = loop
        self._seen_event = False
        self._ready: list[JSON] = list(ready or [])
        if response is None:
            self.done = True

    @classmethod
    def from_json(cls, provider: Provider, target: Target, body: bytes) -> HttpChunkStream:
        try:
            data = jsonio.loads(body)
        except ValueError:
            raise UpstreamFailure(
                "malformed", "the upstream's answer is neither SSE nor JSON"
            ) from None
        completion = provider.chat_response(target, data)
        return cls(None, None, ready=completion_to_chunks(completion))

    async def next_chunk(self) -> JSON | None:
        while not self._ready:
            if self._events is None or self.done:
                return None
            if self._seen_event:
                wait = self._stall_s
                kind, what = (
                    "stall",
                    f"the upstream sent nothing for {self._stall_s:g} s mid-stream",
                )
            else:
                assert self._loop is not None
                wait = max(0.0, self._first_deadline - self._loop.time())
                kind, what = (
                    "first_token_timeout",
                    "the upstream's first token did not arrive in time",
                )
            try:
                async with asyncio.timeout(wait):
                    event, data = await anext(self._events)
            except StopAsyncIteration:
                self._events = None
                return None
            except TimeoutError:
                raise UpstreamFailure(kind, what) from None  # type: ignore[arg-type]
            except _ERRORS as exc:
                raise _transport_failure(exc, "mid-stream") from None
            self._seen_event = True
            assert self._translator is not None
            self._ready.extend(self._translator.feed(event, data))
            if self._translator.done:
                self.done = True
        return self._ready.pop(0)

    async def aclose(self) -> None:
        if self._events is not None:
            events, self._events = self._events, None
            aclose: Any = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(*_ERRORS, RuntimeError):
                    await aclose()
        if self._response is not None:
            response, self._response = self._response, None
            if self.done:
                response.release()  # read to its end: the connection can be reused
            else:
                response.close()  # mid-answer: this connection cannot carry another


class LocalChunkStream(ChunkStream):
    def __init__(self, chunks: AsyncIterator[JSON]) -> None:
        self._chunks = chunks

    async def next_chunk(self) -> JSON | None:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            self.done = True
            return None

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def completion_to_chunks(completion: JSON) -> list[JSON]:
    """A whole ``chat.completion`` as the chunks a stream would have carried."""
    base = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    chunks: list[JSON] = []
    for choice in completion.get("choices") or []:
        message = dict(choice.get("message") or {})
        delta: JSON = {"role": message.get("role", "assistant")}
        if message.get("content") is not None:
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(message["tool_calls"])
            ]
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": choice.get("index", 0),
                        "delta": delta,
                        "finish_reason": choice.get("finish_reason"),
                    }
                ],
            }
        )
    if completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def chunks_to_completion(chunks: list[JSON]) -> JSON:
    """The ``chat.completion`` a list of stream chunks adds up to (deltas merged)."""
    choices: dict[int, JSON] = {}
    usage = None
    head: JSON = {}
    for chunk in chunks:
        head = head or chunk
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            merged = choices.setdefault(
                index,
                {
                    "index": index,
                    "message": {"role": "assistant", "content": None},
                    "finish_reason": None,
                },
            )
            delta = choice.get("delta") or {}
            message = merged["message"]
            if isinstance(delta.get("content"), str):
                message["content"] = (message["content"] or "") + delta["content"]
            for call in delta.get("tool_calls") or []:
                calls = message.setdefault("tool_calls", [])
                at = int(call.get("index", 0))
                while len(calls) <= at:
                    calls.append(
                        {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                    )
                target = calls[at]
                if call.get("id"):
                    target["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    target["function"]["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    target["function"]["arguments"] += function["arguments"]
            if choice.get("finish_reason"):
                merged["finish_reason"] = choice["finish_reason"]
    completion: JSON = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [choices[i] for i in sorted(choices)],
    }
    if usage is not None:
        completion["usage"] = usage
    return completion
