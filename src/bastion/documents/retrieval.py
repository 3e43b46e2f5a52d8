"""What callers of retrieval see: :class:`Passage` and the :class:`Retriever` protocol.

This is the stable interface that answers (``/query``, ``/research``) build on:

- ``await retriever.search(collection, query, top_k, principal)`` returns the best
  passages, best first, from the collections the principal may read (``collection``
  None: every readable collection). A collection the principal may not read raises
  :class:`~bastion.documents.errors.CollectionForbidden`; an unknown one
  :class:`~bastion.documents.errors.CollectionNotFound`.
- ``await retriever.read(ref, principal)`` returns one chunk (``ref`` a chunk id) or a
  whole document (``ref`` a document id) as a :class:`Reading`.

Scores: the fused score in [0, 1] (higher is better; comparable within one
search only). ``start``/``end`` are character offsets into the document's text
(:attr:`Reading.text` of the document), so a citation can point into the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bastion.auth.principal import Principal


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk and where it came from."""

    chunk_id: str
    document_id: str
    document: str  # the document's name (file name or JSONL ``id``/``title``)
    collection: str
    location: str  # "Art. 17", "p. 4", "## Heading", "GDPR Art. 17 › 1." …
    text: str
    score: float
    start: int  # offsets of ``text`` in the document's text
    end: int
    #: How each method ranked it (1 = best; absent: not found by that method), for
    #: evidence: {"bm25": 1, "dense": 3}.
    ranks: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    """What ``read`` returns: a chunk or a whole document."""

    kind: str  # "chunk" or "document"
    id: str
    document_id: str
    document: str
    collection: str
    location: str
    text: str
    start: int
    end: int
    metadata: dict[str, Any] = field(default_factory=dict)


class Retriever(Protocol):
    """Hybrid retrieval over the collections a principal may read."""

    async def search(
        self, collection: str | None, query: str, top_k: int, principal: Principal
    ) -> list[Passage]: ...

    async def read(self, ref: str, principal: Principal) -> Reading: ...

    def readable_collections(self, principal: Principal) -> list[str]: ...
