"""Sending a provider's request and reading its answer: pooled HTTP, timeouts, streams.

One pooled ``httpx.AsyncClient`` per upstream. Every failure becomes an
:class:`UpstreamFailure` whose ``kind`` says what happened (connect, timeout,
first-token timeout, stall, malformed, or the upstream's own error classified by its
provider); retries, fallbacks and breakers are decided by the caller
(:mod:`bastion.gateway.resilience`), never here.

Streams are read event by event with two clocks: the first event must arrive within
the first-token timeout (headers included), each later one within the stall timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import JSON, HttpRequest, Provider, StreamTranslator, Target

_POOL = httpx.Limits(max_connections=2000, max_keepalive_connections=200, keepalive_expiry=30)


def _transport_failure(exc: BaseException, what: str) -> UpstreamFailure:
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamFailure("connect", f"connecting to the upstream timed out ({what})")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamFailure("connect", f"could not connect to the upstream ({what})")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return UpstreamFailure("timeout", f"the upstream did not answer in time ({what})")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return UpstreamFailure("connect", f"the upstream closed the connection ({what})")
    return UpstreamFailure(
        "server_error", f"talking to the upstream failed ({what}): {type(exc).__name__}"
    )


class Transport:
    def __init__(self) -> None:
        self._clients: dict[tuple[str, float, float], httpx.AsyncClient] = {}

    def client(self, target: Target) -> httpx.AsyncClient:
        cfg = target.config
        key = (target.provider, cfg.connect_timeout_s, cfg.timeout_s)
        client = self._clients.get(key)
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s),
                limits=_POOL,
                follow_redirects=False,
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def post_json(
        self, provider: Provider, target: Target, request: HttpRequest, limit_s: float
    ) -> JSON:
        """The upstream's JSON answer to a non-streamed request, or an UpstreamFailure."""
        client = self.client(target)
        try:
            async with asyncio.timeout(limit_s):
                response = await client.post(
                    request.url, json=request.json, headers=request.headers
                )
        except UpstreamFailure:
            raise
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            raise _transport_failure(exc, target.provider) from None
        if response.status_code >= 400:
            raise provider.classify_error(response.status_code, response.content, response.headers)
        try:
            data = response.json()
        except ValueError:
            raise UpstreamFailure(
                "malformed",
                "the upstream's answer is not JSON",
                upstream_status=response.status_code,
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
        client = self.client(target)
        built = client.build_request(
            "POST", request.url, json=request.json, headers=request.headers
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + first_token_s
        try:
            async with asyncio.timeout(first_token_s):
                response = await client.send(built, stream=True)
        except TimeoutError:
            raise UpstreamFailure(
                "first_token_timeout", f"no answer from the upstream within {first_token_s:g} s"
            ) from None
        except (httpx.HTTPError, OSError) as exc:
            raise _transport_failure(exc, target.provider) from None
        if response.status_code >= 400:
            try:
                body = await response.aread()
            except httpx.HTTPError:
                body = b""
            finally:
                await response.aclose()
            raise provider.classify_error(response.status_code, body, response.headers)
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            # Some servers ignore ``stream``; a JSON answer is still an answer.
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            return HttpChunkStream.from_json(provider, target, body)
        return HttpChunkStream(
            response, provider.chat_stream(target), deadline=deadline, stall_s=stall_s, loop=loop
        )


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
        response: httpx.Response | None,
        translator: StreamTranslator | None,
        *,
        deadline: float = 0.0,
        stall_s: float = 60.0,
        loop: asyncio.AbstractEventLoop | None = None,
        ready: list[JSON] | None = None,
    ) -> None:
        self._response = response
        self._translator = translator
        self._events: AsyncIterator[Any] | None = (
            EventSource(response).aiter_sse() if response is not None else None
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
            data = json.loads(body)
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
                    event = await anext(self._events)
            except StopAsyncIteration:
                self._events = None
                return None
            except TimeoutError:
                raise UpstreamFailure(kind, what) from None  # type: ignore[arg-type]
            except SSEError as exc:
                raise UpstreamFailure(
                    "malformed", f"the upstream's stream is not SSE: {exc}"
                ) from None
            except (httpx.HTTPError, OSError) as exc:
                raise _transport_failure(exc, "mid-stream") from None
            self._seen_event = True
            assert self._translator is not None
            self._ready.extend(self._translator.feed(event.event or None, event.data))
            if self._translator.done:
                self.done = True
        return self._ready.pop(0)

    async def aclose(self) -> None:
        if self._events is not None:
            events, self._events = self._events, None
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(httpx.HTTPError, OSError, RuntimeError):
                    await aclose()
        if self._response is not None:
            await self._response.aclose()


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
