"""Relaying a chat call's stream: chunk by chunk with placeholders restored, then
account, settle and record the call before ``[DONE]`` — or end it with an explicit error
event, never a truncated answer that looks complete.

The gateway opens the stream (retries and fallbacks apply until its first chunk) and
hands it to a :class:`StreamRelay`, which ends the call through the same
:class:`~bastion.gateway.lifecycle.Lifecycle` as a whole answer: streaming is composed
over the governed call, not a half of the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, NamedTuple

import anyio

from bastion import jsonio
from bastion.errors import BastionError
from bastion.gateway.answers import account, account_chunks, finish_completion
from bastion.gateway.calls import Call
from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.lifecycle import Lifecycle
from bastion.gateway.providers.base import JSON, Target
from bastion.gateway.requests import ChatRequest
from bastion.gateway.resilience import BREAKER_KINDS
from bastion.gateway.upstream import ChunkStream, chunks_to_completion, completion_to_chunks
from bastion.policy.schema import Policy
from bastion.privacy import PrivacyGuard, Vault

log = logging.getLogger("bastion.gateway")


class OpenedStream(NamedTuple):
    """What relaying one stream works on (the reservation travels on the call)."""

    call: Call
    request: ChatRequest
    stream: ChunkStream
    first: list[JSON]
    target: Target
    guard: PrivacyGuard
    vault: Vault
    policy: Policy


class StreamRelay:
    """Relays opened streams to their callers and ends each call through the lifecycle."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def body(self, relay: OpenedStream) -> AsyncIterator[bytes]:
        """The SSE bytes of one call's answer (the call is settled and recorded inside)."""
        return self._stream_body(relay)

    async def _stream_body(self, relay: OpenedStream) -> AsyncIterator[bytes]:
        call, request, stream, first, target, guard, vault, policy = relay
        if guard.policy.response.action in ("redact", "block"):
            async for part in self._buffered_stream_body(relay):
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
            unended = _check_ended(call, stream, request.n, finished)
            judge(call, None)
            for index, delta in restorer.flush().items():
                yield _sse(_closing_chunk(target.model, index, delta, None))
            for index in unended:
                yield _sse(_closing_chunk(target.model, index, {}, "stop"))
            call.answer_text = "".join(pieces)
            self._stream_postscan(call, guard, vault, restorer.invented)
            call.trail.upstream_s += time.perf_counter() - upstream_started
            account(call, usage, policy)
            await self.lifecycle.finish(call, policy)
            yield b"data: [DONE]\n\n"
        except UpstreamFailure as failure:
            judge(call, failure)
            call.answer_text = "".join(pieces)
            call.trail.upstream_s += time.perf_counter() - upstream_started
            account(call, None, policy)  # billed for what was generated
            call.flags.add("stream_interrupted")
            yield await self._end_failed(call, failure, policy)
        except Exception as exc:
            # Bastion's own step failed after bytes went out (the ledger could not record
            # the call, say): the stream ends with the reason, never with [DONE]; what was
            # generated is billed.
            if not call.done:
                call.answer_text = "".join(pieces)
                account(call, usage, policy)
            yield await self._end_failed(call, exc, policy)
        finally:
            judge(call, asyncio.CancelledError())  # no verdict yet: the client went away
            if not call.done:
                # The client went away (or the server is stopping): bill what was generated.
                call.answer_text = "".join(pieces)
                account(call, usage, policy)
                call.flags.add("client_disconnected")
                with anyio.CancelScope(shield=True):
                    await self.lifecycle.fail(call, asyncio.CancelledError(), policy)
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _buffered_stream_body(self, relay: OpenedStream) -> AsyncIterator[bytes]:
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
            _finish_choices(completion, _check_ended(call, stream, request.n, finished))
            judge(call, None)
            call.trail.upstream_s += time.perf_counter() - upstream_started
            answer = finish_completion(completion, call, guard, vault, policy)
            await self.lifecycle.finish(call, policy)
            for out in completion_to_chunks(answer):
                if out.get("usage") and not out.get("choices") and not request.include_usage:
                    continue
                yield _sse(out)
            yield b"data: [DONE]\n\n"
        except Exception as exc:
            judge(call, exc)
            if isinstance(exc, UpstreamFailure):
                call.flags.add("stream_interrupted")
            if not call.done:
                account_chunks(call, chunks, policy)  # what was generated is billed
            yield await self._end_failed(call, exc, policy)
        finally:
            judge(call, asyncio.CancelledError())
            if not call.done:
                call.flags.add("client_disconnected")
                account_chunks(call, chunks, policy)
                with anyio.CancelScope(shield=True):
                    await self.lifecycle.fail(call, asyncio.CancelledError(), policy)
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _end_failed(self, call: Call, error: BaseException, policy: Policy) -> bytes:
        """Record a stream that failed after its first byte; the event that ends it."""
        if not isinstance(error, BastionError):
            log.exception("a stream failed inside Bastion", exc_info=error)
        with anyio.CancelScope(shield=True):
            await self.lifecycle.fail(call, error, policy)
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


def judge(call: Call, failure: BaseException | None) -> None:
    """A stream's verdict on its deployment, given once, when the upstream's part ends
    (``bastion.gateway.breaker``): its whole answer came, it broke off (the upstream's
    fault), or neither (the client left, or Bastion's own step failed)."""
    ticket, call.trail.owed = call.trail.owed, None
    if ticket is None:
        return
    if failure is None:
        ticket.verdict(ok=True, fault=None)
    elif isinstance(failure, UpstreamFailure) and failure.kind in BREAKER_KINDS:
        ticket.verdict(ok=False, fault=failure.kind)
    else:
        ticket.abandon()


def policy_response_off(guard: PrivacyGuard) -> bool:
    return guard.policy.response.action == "off"


#: What a client is told when a stream fails on a bug of Bastion's (logged, with the id).
INTERNAL_STREAM_ERROR = BastionError(
    "Bastion failed while streaming this answer; it has been logged with this request id",
    code="internal_error",
)


def _check_ended(call: Call, stream: ChunkStream, n: int, finished: set[int]) -> list[int]:
    """The choices to finish with ``stop`` on the upstream's behalf; raises for a
    stream that was cut short.

    A stream is whole when the upstream said so, with ``[DONE]`` (some OpenAI-compatible
    servers never send a finish reason: their choices are finished here), or when each
    of its ``n`` choices finished (a missing ``[DONE]`` is flagged). A stream with
    neither may have been cut anywhere: a failure, never an answer that looks complete.
    """
    missing = unfinished(n, finished)
    if not stream.done:
        if missing:
            raise UpstreamFailure(
                "malformed",
                "the upstream's stream ended before the answer was complete "
                f"(choice {', '.join(map(str, missing))} never finished)",
            )
        call.flags.add("upstream_missing_done")
    elif missing:
        call.flags.add("upstream_missing_finish")
        call.finish_reason = call.finish_reason or "stop"
    return missing if stream.done else []


def unfinished(n: int, finished: set[int]) -> list[int]:
    """The choices of an ``n``-choice stream that never got a finish reason."""
    return [i for i in range(max(n, 1)) if i not in finished]


def _closing_chunk(model: str, index: int, delta: JSON, finish: str | None) -> JSON:
    """A chunk Bastion adds at a stream's end (held-back text, a missing finish)."""
    return {
        "id": "",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def _finish_choices(completion: JSON, indexes: list[int]) -> None:
    """Finish with ``stop`` the choices of a whole stream that lacked a finish reason."""
    choices = {choice["index"]: choice for choice in completion["choices"]}
    for index in indexes:
        choice = choices.setdefault(
            index, {"index": index, "message": {"role": "assistant", "content": None}}
        )
        choice["finish_reason"] = "stop"
    completion["choices"] = [choices[i] for i in sorted(choices)]


def _sse_error(error: BastionError) -> bytes:
    """The event that ends a failed stream, in OpenAI's error shape (SDKs raise on it)."""
    return _sse(
        {"error": {"message": error.message, "type": error.type, "code": error.code, "param": None}}
    )


def _sse(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + jsonio.dumps(payload) + b"\n\n"
