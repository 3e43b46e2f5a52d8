"""Embeddings for documents and queries, made through the gateway's ``/v1/embeddings``
path (:meth:`bastion.gateway.service.Gateway.embeddings`): each call is admitted
against the caller's limits and budgets, masked, recorded in the ledger and counted
in metrics, exactly like a client's call. The model is the policy's
``documents.embedding_model``; without one there are no vectors (BM25 alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.gateway.service import Gateway

BATCH = 64
#: Longest wait for a rate limit during ingestion before giving up (the caller's limits
#: stay in force: a large ingest is paced by them, not exempt from them).
MAX_WAIT_S = 120.0
Matrix = np.ndarray[tuple[int, int], np.dtype[np.float32]]


class Embedder(Protocol):
    async def embed(self, model: str, texts: Sequence[str], principal: Principal) -> Matrix: ...


class GatewayEmbedder:
    def __init__(self, gateway: Gateway, *, wait_for_limits: bool = False) -> None:
        self.gateway = gateway
        self.wait_for_limits = wait_for_limits

    def pacing(self) -> GatewayEmbedder:
        """The same embedder, waiting out rate limits (for ingestion, not for queries)."""
        return GatewayEmbedder(self.gateway, wait_for_limits=True)

    async def embed(self, model: str, texts: Sequence[str], principal: Principal) -> Matrix:
        rows: list[Any] = []
        for begin in range(0, len(texts), BATCH):
            batch = list(texts[begin : begin + BATCH])
            reply = await self._call(model, batch, principal)
            body = reply.body or {}
            data = sorted(body.get("data", []), key=lambda d: d["index"])
            rows.extend(d["embedding"] for d in data)
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit: Matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    async def _call(self, model: str, batch: list[str], principal: Principal) -> Any:
        from bastion.gateway.errors import RateLimited

        while True:
            try:
                return await self.gateway.embeddings(principal, {"model": model, "input": batch})
            except RateLimited as exc:
                if not self.wait_for_limits or exc.retry_after > MAX_WAIT_S:
                    raise
                await asyncio.sleep(max(exc.retry_after, 0.05))
