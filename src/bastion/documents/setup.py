"""Building the documents service and the retriever from the runtime and the gateway."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.documents.embeddings import GatewayEmbedder
from bastion.documents.search import HybridRetriever
from bastion.documents.service import DocumentService
from bastion.documents.vectors import VectorIndex
from bastion.gateway.service import Gateway
from bastion.runtime import Runtime


@dataclass
class Documents:
    service: DocumentService
    retriever: HybridRetriever


def build_documents(runtime: Runtime, gateway: Gateway) -> Documents:
    embedder = GatewayEmbedder(gateway)
    vectors = VectorIndex(runtime.db)  # one check of the schema for both
    service = DocumentService(
        runtime.db,
        runtime.policy,
        runtime.ledger,
        embedder.pacing(),
        lambda: gateway.guard(runtime.policy.policy),
        vectors,
    )
    return Documents(service, HybridRetriever(runtime.db, runtime.policy, embedder, vectors))
