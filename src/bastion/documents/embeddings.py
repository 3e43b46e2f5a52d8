"""Embeddings for documents and queries, made through the gateway's ``/v1/embeddings``
path (:meth:`bastion.gateway.service.Gateway.embeddings`): each call is admitted
against the caller's limits and budgets, masked, recorded in the ledger and counted
in metrics, exactly like a client's call. The model is the policy's
``documents.embedding_model``; without one there are no vectors (BM25 alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.gateway.service import Gateway

BATCH = 64
Matrix = np.ndarray[tuple[int, int], np.dtype[np.float32]]


class Embedder(Protocol):
    async def embed(self, model: str, texts: Sequence[str], principal: Principal) -> Matrix: ...


class GatewayEmbedder:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def embed(self, model: str, texts: Sequence[str], principal: Principal) -> Matrix:
        rows: list[Any] = []
        for begin in range(0, len(texts), BATCH):
            batch = list(texts[begin : begin + BATCH])
            reply = await self.gateway.embeddings(principal, {"model": model, "input": batch})
            body = reply.body or {}
            data = sorted(body.get("data", []), key=lambda d: d["index"])
            rows.extend(d["embedding"] for d in data)
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit: Matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit
