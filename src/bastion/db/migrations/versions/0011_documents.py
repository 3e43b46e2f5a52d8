"""documents: ingested documents, their chunks, and a full-text index per backend

SQLite: an external-content FTS5 table ``doc_chunks_fts`` over ``doc_chunks.search_text``
(porter stemming over unicode61), kept in step by triggers. PostgreSQL: a generated
``tsvector`` column ``doc_chunks.tsv`` (English configuration) with a GIN index.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE doc_chunks_fts USING fts5(search_text, content='doc_chunks', "
    "content_rowid='pk', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER doc_chunks_ai AFTER INSERT ON doc_chunks BEGIN "
    "INSERT INTO doc_chunks_fts(rowid, search_text) VALUES (new.pk, new.search_text); END",
    "CREATE TRIGGER doc_chunks_ad AFTER DELETE ON doc_chunks BEGIN "
    "INSERT INTO doc_chunks_fts(doc_chunks_fts, rowid, search_text) "
    "VALUES ('delete', old.pk, old.search_text); END",
    "CREATE TRIGGER doc_chunks_au AFTER UPDATE ON doc_chunks BEGIN "
    "INSERT INTO doc_chunks_fts(doc_chunks_fts, rowid, search_text) "
    "VALUES ('delete', old.pk, old.search_text); "
    "INSERT INTO doc_chunks_fts(rowid, search_text) VALUES (new.pk, new.search_text); END",
]


def upgrade() -> None:
    op.create_table(
        "doc_documents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("personal_data", sa.JSON(), nullable=False),
        sa.Column("embedding_model", sa.String(length=200), nullable=True),
        sa.Column("ingested_by", sa.String(length=200), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_doc_documents")),
        sa.UniqueConstraint("collection", "name", name="uq_doc_documents_collection_name"),
    )
    op.create_index(
        op.f("ix_doc_documents_collection"), "doc_documents", ["collection"], unique=False
    )
    op.create_table(
        "doc_chunks",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chunk_id", sa.String(length=60), nullable=False),
        sa.Column("document_id", sa.String(length=40), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["doc_documents.id"],
            name=op.f("fk_doc_chunks_document_id_doc_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_doc_chunks")),
        sa.UniqueConstraint("chunk_id", name="uq_doc_chunks_chunk_id"),
    )
    op.create_index(op.f("ix_doc_chunks_collection"), "doc_chunks", ["collection"], unique=False)
    op.create_index(
        "ix_doc_chunks_document_ordinal", "doc_chunks", ["document_id", "ordinal"], unique=False
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE doc_chunks ADD COLUMN tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED"
        )
        op.execute("CREATE INDEX ix_doc_chunks_tsv ON doc_chunks USING gin (tsv)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("doc_chunks_ai", "doc_chunks_ad", "doc_chunks_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS doc_chunks_fts")
    op.drop_table("doc_chunks")
    op.drop_table("doc_documents")
