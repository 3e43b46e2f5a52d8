"""Document tables: one row per ingested document, one per chunk.

The full-text indexes are not declared here: the migration builds them per backend
(an FTS5 table ``doc_chunks_fts`` kept in step by triggers on SQLite; a generated
``tsvector`` column ``doc_chunks.tsv`` with a GIN index on PostgreSQL). Embeddings
are stored as little-endian float32 bytes with the model that made them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import Mapped, mapped_column

from bastion.db.base import Base, utcnow


class DocumentRow(Base):
    __tablename__ = "doc_documents"
    __table_args__ = (Unique("collection", "name", name="uq_doc_documents_collection_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(20))
    #: sha256 of the document's source (bytes of a file, the JSONL line's text and
    #: metadata): re-ingesting the same content is skipped, changed content replaces.
    digest: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    #: What the privacy pass did ("index", "mask") and what it found (types and counts).
    personal_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    ingested_by: Mapped[str] = mapped_column(String(200))
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChunkRow(Base):
    __tablename__ = "doc_chunks"
    __table_args__ = (
        Unique("chunk_id", name="uq_doc_chunks_chunk_id"),
        Index("ix_doc_chunks_document_ordinal", "document_id", "ordinal"),
    )

    #: Integer key: FTS5's ``content_rowid``.
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chunk_id: Mapped[str] = mapped_column(String(60))
    document_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("doc_documents.id", ondelete="CASCADE")
    )
    collection: Mapped[str] = mapped_column(String(200), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    location: Mapped[str] = mapped_column(String(500))
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    #: What the lexical index reads: the location header, then the text.
    search_text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
