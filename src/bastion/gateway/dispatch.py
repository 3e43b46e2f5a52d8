"""Sending one attempt to one target: the provider's request, the transport, its answer.

:class:`~bastion.gateway.resilience.Resilience` decides which target is tried and
when; a :class:`Dispatcher` makes the one attempt, whole, as an embedding, or as a
stream whose first chunk has arrived.
"""

from __future__ import annotations

from bastion.gateway.errors import UpstreamFailure
from bastion.gateway.providers import registry
from bastion.gateway.providers.base import JSON, InProcessProvider, Provider, Target
from bastion.gateway.upstream import ChunkStream, LocalChunkStream, Transport


class Dispatcher:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def provider(self, target: Target) -> Provider | InProcessProvider:
        return registry.get(target.config.kind)

    async def complete(self, target: Target, body: JSON, left: float) -> JSON:
        provider = self.provider(target)
        if isinstance(provider, InProcessProvider):
            return await provider.complete(target, {**body, "model": target.upstream_model})
        request = provider.chat_request(target, body, stream=False)
        data = await self.transport.post_json(
            provider, target, request, min(left, target.config.timeout_s)
        )
        return provider.chat_response(target, data)

    async def embed(self, target: Target, body: JSON, left: float) -> JSON:
        provider = self.provider(target)
        if isinstance(provider, InProcessProvider):
            return await provider.embed(target, {**body, "model": target.upstream_model})
        request = provider.embeddings_request(target, body)
        data = await self.transport.post_json(
            provider, target, request, min(left, target.config.timeout_s)
        )
        return provider.embeddings_response(target, data)

    async def open_stream(
        self, target: Target, body: JSON, left: float
    ) -> tuple[ChunkStream, list[JSON]]:
        """A stream whose first chunk has arrived (until then, retries and fallbacks apply)."""
        provider = self.provider(target)
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
