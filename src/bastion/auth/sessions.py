"""Dashboard sessions: an API key exchanged for a session token, with expiry and logout.

The browser holds a random token; the ``ui_sessions`` table holds only its SHA-256
digest, the key it was opened with and its times, so several server processes share the
sessions and a logout or an expiry in one is seen by all. Each request turns the token
back into a :class:`Principal` through the key's row (:meth:`KeyService.principal_of`):
a key revoked, expired or moved to another role changes its sessions at once.

A session ends ``max_s`` after sign-in, or ``idle_s`` after its last use, whichever
comes first. Sign-in (success or failure) and sign-out are ledger events; the ledger
names the key by its prefix, never a secret or a session token.

    Unauthenticated (401)
    ├── SessionMissing    session_required   no session cookie, or an unknown token
    └── SessionExpired    session_expired    idle too long, or past its absolute end
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update

from bastion.audit.events import EventIn, Ledger
from bastion.auth.keys import split_key
from bastion.auth.models import UiSession
from bastion.auth.principal import Principal
from bastion.auth.service import KeyService
from bastion.db import Database, utcnow
from bastion.errors import Unauthenticated

#: A session's last use is written at most this often (seconds): idle expiry needs no
#: more precision, and a page view then costs no write.
TOUCH_EVERY_S = 30.0


class SessionMissing(Unauthenticated):
    code = "session_required"


class SessionExpired(Unauthenticated):
    code = "session_expired"


@dataclass(frozen=True)
class OpenedSession:
    token: str  # for the cookie only; never stored, logged or recorded
    principal: Principal
    expires_at: datetime


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionService:
    def __init__(
        self,
        db: Database,
        keys: KeyService,
        ledger: Ledger,
        *,
        idle_s: float,
        max_s: float,
        secret: bytes,
    ) -> None:
        self.db = db
        self.keys = keys
        self.ledger = ledger
        self.idle = timedelta(seconds=idle_s)
        self.max = timedelta(seconds=max_s)
        self._secret = secret

    def sign_in(self, secret: str, *, via: str = "ui") -> OpenedSession:
        """Check the key as the API does and open a session for it (both recorded)."""
        prefix = split_key(secret.strip())
        try:
            principal = self.keys.authenticate(secret.strip())
        except Unauthenticated as exc:
            self.ledger.append(
                EventIn(
                    actor="anonymous",
                    action="ui.sign_in",
                    resource=f"key:{prefix}" if prefix else "key:malformed",
                    outcome="failure",
                    details={"via": via, "error": exc.code},
                )
            )
            raise
        token = secrets.token_urlsafe(32)
        now = utcnow()
        row = UiSession(
            digest=token_digest(token),
            key_id=principal.key_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.max,
        )
        self.ledger.append(
            EventIn(
                actor=principal.actor,
                action="ui.sign_in",
                resource=f"key:{principal.key_prefix}",
                outcome="success",
                details={"via": via, "role": principal.role, "team": principal.team},
            )
        )
        with self.db.session() as session:
            # Sweep what has ended (any process's), so the table holds live sessions.
            session.execute(
                delete(UiSession).where(
                    or_(UiSession.expires_at <= now, UiSession.last_seen_at <= now - self.idle)
                )
            )
            session.add(row)
        return OpenedSession(token, principal, row.expires_at)

    def resolve(self, token: str) -> Principal:
        """The principal a session token stands for; raises when it has ended."""
        digest = token_digest(token)
        now = utcnow()
        with self.db.session() as session:
            row = session.scalar(select(UiSession).where(UiSession.digest == digest))
            if row is None:
                raise SessionMissing("you are not signed in: sign in with an API key")
            if row.expires_at <= now or row.last_seen_at + self.idle <= now:
                session.delete(row)
                raise SessionExpired("your session has ended: sign in again")
            key_id = row.key_id
            if (now - row.last_seen_at).total_seconds() >= TOUCH_EVERY_S:
                session.execute(
                    update(UiSession).where(UiSession.digest == digest).values(last_seen_at=now)
                )
        return self.keys.principal_of(key_id)

    def sign_out(self, token: str, principal: Principal) -> None:
        with self.db.session() as session:
            session.execute(delete(UiSession).where(UiSession.digest == token_digest(token)))
        self.ledger.append(
            EventIn(
                actor=principal.actor,
                action="ui.sign_out",
                resource=f"key:{principal.key_prefix}",
                outcome="success",
                details={},
            )
        )

    def csrf_token(self, token: str) -> str:
        """The form token of a session (or of a sign-in form's nonce): a keyed digest,
        so nothing more is stored and another session's token never fits."""
        return hmac.new(self._secret, b"bastion/ui-csrf:" + token.encode(), "sha256").hexdigest()

    def csrf_ok(self, token: str, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(self.csrf_token(token), presented)
