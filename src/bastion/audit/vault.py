"""Stored content encrypted at rest, one key per data subject (crypto-shredding).

Each data subject (the user a call was made for) has a random 256-bit content key.
Content (prompts, responses) is stored as ``aesgcm1:<base64(nonce || ciphertext)>``,
AES-256-GCM with the row's place (``stream:seq:field``) as associated data, so a body
cannot be moved to another row. The subject's key is stored in ``audit_subject_keys``
wrapped (AES-GCM) by the key-encryption key, which is not in the database
(``BASTION_CONTENT_KEY``, by default derived from the secret key): a copy of the
database alone decrypts nothing. Erasing a subject deletes its key row: its content is
then unreadable wherever a copy of it survives, except in a backup taken while the key
existed (which holds the wrapped key): ``docs/audit.md`` says how to keep backups
within the erasure window.

Rows are keyed by the subject's keyed digest, never by the subject's name.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from bastion.audit.models import AuditSubjectKey
from bastion.db import Database, utcnow

PREFIX = "aesgcm1:"
#: The subject of content stored for no user.
NOBODY = "-"


class ContentVault:
    def __init__(self, db: Database, kek: bytes, digest_of: Callable[[str], str]) -> None:
        if len(kek) != 32:
            raise ValueError("the content key-encryption key must be 32 bytes")
        self.db = db
        self._kek = AESGCM(kek)
        self.digest_of = digest_of

    def subject_digest(self, subject: str | None) -> str:
        return self.digest_of(subject or NOBODY)

    # keys ---------------------------------------------------------------------------

    def _wrap(self, digest: str, key: bytes) -> str:
        nonce = os.urandom(12)
        sealed = self._kek.encrypt(nonce, key, f"subject-key:{digest}".encode())
        return base64.b64encode(nonce + sealed).decode()

    def _unwrap(self, digest: str, wrapped: str) -> bytes:
        raw = base64.b64decode(wrapped)
        return self._kek.decrypt(raw[:12], raw[12:], f"subject-key:{digest}".encode())

    def key_for(self, digest: str, *, create: bool) -> bytes | None:
        """The subject's content key; created when ``create`` and none exists."""
        for _attempt in range(2):
            with self.db.engine.connect() as conn:
                wrapped = conn.scalar(
                    select(AuditSubjectKey.wrapped).where(AuditSubjectKey.subject == digest)
                )
            if wrapped is not None:
                return self._unwrap(digest, wrapped)
            if not create:
                return None
            key = AESGCM.generate_key(256)
            try:
                with self.db.engine.begin() as conn:
                    conn.execute(
                        insert(AuditSubjectKey),
                        [
                            {
                                "subject": digest,
                                "wrapped": self._wrap(digest, key),
                                "created_at": utcnow(),
                            }
                        ],
                    )
            except IntegrityError:
                continue  # another writer created it first: use theirs
            return key
        raise RuntimeError("the subject key could not be created")

    def shred(self, digest: str) -> int:
        with self.db.engine.begin() as conn:
            result = conn.execute(delete(AuditSubjectKey).where(AuditSubjectKey.subject == digest))
            return int(result.rowcount or 0)

    # content ------------------------------------------------------------------------

    def seal_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Content rows as the writer built them, with the subject replaced by its digest
        and the body encrypted under the subject's key."""
        keys: dict[str, bytes] = {}
        sealed = []
        for row in rows:
            digest = self.subject_digest(row["subject"])
            key = keys.get(digest)
            if key is None:
                key = keys[digest] = self.key_for(digest, create=True)  # type: ignore[assignment]
            assert key is not None
            nonce = os.urandom(12)
            aad = f"{row['stream']}:{row['seq']}:{row['field']}".encode()
            body = AESGCM(key).encrypt(nonce, str(row["body"]).encode(), aad)
            sealed.append(
                {**row, "subject": digest, "body": PREFIX + base64.b64encode(nonce + body).decode()}
            )
        return sealed

    def open_body(
        self, key: bytes | None, stream: str, seq: int, field: str, body: str
    ) -> str | None:
        """The plaintext of a stored body; None when its key was shredded. Bodies stored
        before encryption (no prefix) are returned as they are."""
        if not body.startswith(PREFIX):
            return body
        if key is None:
            return None
        raw = base64.b64decode(body[len(PREFIX) :])
        try:
            plain = AESGCM(key).decrypt(raw[:12], raw[12:], f"{stream}:{seq}:{field}".encode())
        except InvalidTag:
            return None
        return plain.decode()
