"""The streamed half of a chat call: open the upstream's stream (retries and fallbacks
apply until its first chunk), relay it chunk by chunk with placeholders restored, and
account, settle and record the call before ``[DONE]`` — or end it with an explicit error
event, never a truncated answer that looks complete.

:class:`Streams` is a base class of :class:`~bastion.gateway.service.Gateway`, which
provides the accounting, settling and recording its methods call; they are declared in
the class for the type checker, which then also checks the gateway's own definitions
against them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from bastion import jsonio
from bastion.errors import BastionError
from bastion.gateway.calls import Call, Reply
from bastion.gateway.counters import Reservation
from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers.base import JSON, InProcessProvider, Target
from bastion.gateway.requests import ChatRequest
from bastion.gateway.upstream import (
    ChunkStream,
    LocalChunkStream,
    chunks_to_completion,
    completion_to_chunks,
)
from bastion.policy.schema import Policy
from bastion.privacy import PrivacyGuard, Vault

if TYPE_CHECKING:
    from bastion.gateway.providers.base import Provider
    from bastion.gateway.resilience import Resilience
    from bastion.gateway.upstream import Transport

log = logging.getLogger("bastion.gateway")


class _Relay(NamedTuple):
    """What relaying one stream works on (the reservation, settled on the way, apart)."""

    call: Call
    request: ChatRequest
    stream: ChunkStream
    first: list[JSON]
    target: Target
    guard: PrivacyGuard
    vault: Vault
    policy: Policy


class Streams:
    """Opening and relaying a chat call's stream, for :class:`~bastion.gateway.service.Gateway`."""

    # What the gateway provides (see bastion.gateway.service.Gateway).
    resilience: Resilience
    transport: Transport
    if TYPE_CHECKING:

        def _provider(self, target: Target) -> Provider | InProcessProvider: ...
        def _deadline(self) -> float: ...
        def _headers(self, call: Call) -> dict[str, str]: ...
        def _account(self, call: Call, usage: Mapping[str, Any] | None, policy: Policy) -> None: ...
        def _observe(self, call: Call) -> None: ...
        async def _settle(self, reservation: Reservation | None, call: Call) -> None: ...
        async def _audit(self, call: Call, policy: Policy) -> None: ...
        async def _fail(
            self, call: Call, exc: BaseException, reservation: Reservation | None
        ) -> None: ...
        def _finish_completion(
            self, completion: JSON, call: Call, guard: PrivacyGuard, vault: Vault, policy: Policy
        ) -> JSON: ...

    async def _open(
        self, target: Target, body: JSON, left: float
    ) -> tuple[ChunkStream, list[JSON]]:
        """A stream whose first chunk has arrived (until then, retries and fallbacks apply)."""
        provider = self._provider(target)
        cfg = target.config
        first_token_s = min(left, cfg.first_token_timeout_s or cfg.timeout_s)
        stream: ChunkStream
        if isinstance(provider, InProcessProvider):
            stream = LocalChunkStream(
                provider.stream(target, {**body, "model": target.upstream_model}).__aiter__()
            )
        else:
            request = provider.chat_request(target, body, stream=True)
            stream = await self.transport.open_stream(
                provider,
                target,
                request,
                first_token_s=first_token_s,
                stall_s=cfg.stall_timeout_s or cfg.timeout_s,
            )
        try:
            first = await stream.next_chunk()
        except BaseException:
            await stream.aclose()
            raise
        if first is None:
            await stream.aclose()
            raise UpstreamFailure("malformed", "the upstream's stream ended before any chunk")
        return stream, [first]

    async def _chat_stream(
        self,
        call: Call,
        request: ChatRequest,
        sent: JSON,
        targets: list[Target | UpstreamFailure],
        guard: PrivacyGuard,
        vault: Vault,
        reservation: Reservation | None,
        policy: Policy,
    ) -> Reply:
        loop = asyncio.get_running_loop()
        started = loop.time()
        (stream, first), target = await self.resilience.run(
            targets, lambda t, left: self._open(t, sent, left), call.trail, self._deadline()
        )
        call.ttft_s = loop.time() - started
        call.served_model, call.provider = target.model, target.provider
        headers = self._headers(call)
        relay = _Relay(call, request, stream, first, target, guard, vault, policy)
        return Reply(None, headers, self._stream_body(relay, reservation))

    async def _stream_body(
        self, relay: _Relay, reservation: Reservation | None
    ) -> AsyncIterator[bytes]:
        call, request, stream, first, target, guard, vault, policy = relay
        if guard.policy.response.action in ("redact", "block"):
            async for part in self._buffered_stream_body(relay, reservation):
                yield part
            return
        restorer = guard.stream_restorer(vault)
        pieces: list[str] = []
        usage: dict[str, Any] | None = None
        finished: set[int] = set()
        pending = list(first)
        upstream_started = time.perf_counter()
        try:
            while True:
                if pending:
                    chunk = pending.pop(0)
                else:
                    next_chunk = await stream.next_chunk()
                    if next_chunk is None:
                        break
                    chunk = next_chunk
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                chunk["model"] = target.model
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if isinstance(delta.get("content"), str):
                        pieces.append(delta["content"])
                    for tc in delta.get("tool_calls") or []:
                        pieces.append(str((tc.get("function") or {}).get("arguments") or ""))
                    if choice.get("finish_reason"):
                        finished.add(int(choice.get("index", 0)))
                        call.finish_reason = choice["finish_reason"]
                out = restorer.restore_chunk(chunk)
                if out.get("usage") and not out.get("choices") and not request.include_usage:
                    continue  # asked for by Bastion, not by the client
                yield _sse(out)
            _check_ended(call, stream, request.n, finished)
            for index, delta in restorer.flush().items():
                yield _sse(
                    {
                        "id": "",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": target.model,
                        "choices": [{"index": index, "delta": delta, "finish_reason": None}],
                    }
                )
            call.answer_text = "".join(pieces)
            self._stream_postscan(call, guard, vault, restorer.invented)
            call.trail.upstream_s += time.perf_counter() - upstream_started
            self._account(call, usage, policy)
            await self._settle(reservation, call)
            reservation = None
            await self._audit(call, policy)
            self._observe(call)
            call.done = True
            yield b"data: [DONE]\n\n"
        except UpstreamFailure as failure:
            call.answer_text = "".join(pieces)
            call.trail.upstream_s += time.perf_counter() - upstream_started
            self._account(call, None, policy)  # billed for what was generated
            call.flags.add("stream_interrupted")
            yield await self._end_failed(call, failure, reservation)
            reservation = None
        except Exception as exc:
            # Bastion's own step failed after bytes went out (the ledger could not record
            # the call, say): the stream ends with the reason, never with [DONE]; what was
            # generated is billed.
            if reservation is not None:
                call.answer_text = "".join(pieces)
                self._account(call, usage, policy)
            yield await self._end_failed(call, exc, reservation)
            reservation = None
        finally:
            if not call.done and reservation is not None:
                # The client went away (or the server is stopping): bill what was generated.
                call.answer_text = "".join(pieces)
                self._account(call, usage, policy)
                call.flags.add("client_disconnected")
                with anyio.CancelScope(shield=True):
                    await self._fail(call, asyncio.CancelledError(), reservation)
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _buffered_stream_body(
        self, relay: _Relay, reservation: Reservation | None
    ) -> AsyncIterator[bytes]:
        """A stream whose answer must be scanned before any of it is shown.

        With ``privacy.response.action`` ``redact`` or ``block`` no text may reach the
        client before the leak scan has seen all of it, so the upstream's stream is read
        whole (its timeouts still apply), checked as one answer, and then sent as a
        stream. The client trades time-to-first-token for the guarantee.
        """
        call, request, stream, first, _, guard, vault, policy = relay
        chunks = list(first)
        upstream_started = time.perf_counter()
        try:
            while (chunk := await stream.next_chunk()) is not None:
                chunks.append(chunk)
            completion = chunks_to_completion(chunks)
            finished = {c["index"] for c in completion["choices"] if c.get("finish_reason")}
            _check_ended(call, stream, request.n, finished)
            call.trail.upstream_s += time.perf_counter() - upstream_started
            answer = self._finish_completion(completion, call, guard, vault, policy)
            await self._settle(reservation, call)
            reservation = None
            await self._audit(call, policy)
            self._observe(call)
            call.done = True
            for out in completion_to_chunks(answer):
                if out.get("usage") and not out.get("choices") and not request.include_usage:
                    continue
                yield _sse(out)
            yield b"data: [DONE]\n\n"
        except Exception as exc:
            if isinstance(exc, UpstreamFailure):
                call.flags.add("stream_interrupted")
            if reservation is not None and not call.done:
                self._account_chunks(call, chunks, policy)  # what was generated is billed
            yield await self._end_failed(call, exc, reservation)
            reservation = None
        finally:
            if not call.done and reservation is not None:
                call.flags.add("client_disconnected")
                self._account_chunks(call, chunks, policy)
                with anyio.CancelScope(shield=True):
                    await self._fail(call, asyncio.CancelledError(), reservation)
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    def _account_chunks(self, call: Call, chunks: list[JSON], policy: Policy) -> None:
        """Bill the chunks a stream delivered before it broke off (upstream usage if it
        came, else the generated text counted)."""
        texts: list[str] = []
        usage = None
        for chunk in chunks:
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                texts.append(str(delta.get("content") or ""))
                for tc in delta.get("tool_calls") or []:
                    texts.append(str((tc.get("function") or {}).get("arguments") or ""))
        call.answer_text = "".join(texts)
        self._account(call, usage, policy)

    async def _end_failed(
        self, call: Call, error: BaseException, reservation: Reservation | None
    ) -> bytes:
        """Record a stream that failed after its first byte; the event that ends it."""
        if not isinstance(error, BastionError):
            log.exception("a stream failed inside Bastion", exc_info=error)
        with anyio.CancelScope(shield=True):
            await self._fail(call, error, reservation)
        return _sse_error(error if isinstance(error, BastionError) else INTERNAL_STREAM_ERROR)

    def _stream_postscan(
        self, call: Call, guard: PrivacyGuard, vault: Vault, invented: list[str]
    ) -> None:
        """Leak flags for a streamed answer (it has gone out; the event records them)."""
        if policy_response_off(guard):
            return
        try:
            leaks = guard.scanner.scan(call.answer_text, vault)
        except Exception:
            call.flags.add("privacy_error")
            return
        call.flags.update(f"pii_leak:{leak.entity_type}" for leak in leaks)
        call.flags.update(guard.denylist.check_flags(call.answer_text))
        if invented:
            call.flags.add("invented_placeholder")


def policy_response_off(guard: PrivacyGuard) -> bool:
    return guard.policy.response.action == "off"


#: What a client is told when a stream fails on a bug of Bastion's (logged, with the id).
INTERNAL_STREAM_ERROR = BastionError(
    "Bastion failed while streaming this answer; it has been logged with this request id",
    code="internal_error",
)


def _check_ended(call: Call, stream: ChunkStream, n: int, finished: set[int]) -> None:
    """A stream that ended before each of its ``n`` choices finished is a failure; one
    that finished them without ``[DONE]`` is flagged."""
    missing = unfinished(n, finished)
    if missing:
        raise UpstreamFailure(
            "malformed",
            "the upstream's stream ended before the answer was complete "
            f"(choice {', '.join(map(str, missing))} never finished)",
        )
    if not stream.done:
        call.flags.add("upstream_missing_done")


def unfinished(n: int, finished: set[int]) -> list[int]:
    """The choices of an ``n``-choice stream that never got a finish reason."""
    return [i for i in range(max(n, 1)) if i not in finished]


def _sse_error(error: BastionError) -> bytes:
    """The event that ends a failed stream, in OpenAI's error shape (SDKs raise on it)."""
    return _sse(
        {"error": {"message": error.message, "type": error.type, "code": error.code, "param": None}}
    )


def _sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + jsonio.dumps(payload) + b"\n\n"
