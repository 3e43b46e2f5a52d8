"""API keys: create, list, revoke, and turn a presented key into a :class:`Principal`.

Every change is a ledger event, appended before the change is applied (so a change
that is not in the ledger never happened). Verified keys are remembered for
``key_cache_ttl_s`` so the gateway's hot path does not touch the database on every
call; a revocation in this process takes effect at once, in other processes within
the TTL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bastion.audit.events import EventIn, Ledger
from bastion.auth.errors import (
    ExpiredKey,
    InvalidKey,
    KeyNotFound,
    PermissionDenied,
    RevokedKey,
    UnknownRole,
    UnknownTeam,
)
from bastion.auth.keys import generate_key, matches, split_key
from bastion.auth.models import ApiKey
from bastion.auth.permissions import DEFAULT_ROLE_PERMISSIONS, NEW_ROLE_PERMISSIONS, Permission
from bastion.auth.principal import Principal
from bastion.auth.repository import KeyRepository
from bastion.db import Database, utcnow
from bastion.errors import InvalidInput
from bastion.policy import PolicyStore
from bastion.policy.schema import KeyRestrictions

#: A key's ``last_used_at`` is written at most this often (and only on a cache miss).
LAST_USE_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class KeyView:
    id: str
    prefix: str
    name: str | None
    user: str
    team: str | None
    role: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    restrictions: dict[str, object] | None = None
    last_used_at: datetime | None = None

    @classmethod
    def of(cls, row: ApiKey) -> KeyView:
        return cls(
            id=row.id,
            prefix=row.prefix,
            name=row.name,
            user=row.user,
            team=row.team,
            role=row.role,
            created_at=row.created_at,
            created_by=row.created_by,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            restrictions=row.restrictions,
            last_used_at=row.last_used_at,
        )

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


@dataclass(frozen=True)
class CreatedKey:
    key: KeyView
    secret: str


@dataclass(frozen=True)
class _Cached:
    principal: Principal
    digest: str
    expires_at: datetime | None
    policy_digest: str
    until: float


class KeyService:
    def __init__(self, db: Database, policy: PolicyStore, ledger: Ledger, cache_ttl_s: float = 5.0):
        self.db = db
        self.policy = policy
        self.ledger = ledger
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        # Bumped by each revocation: a lookup that started before one is not cached.
        self._epoch = 0

    # -- management ---------------------------------------------------------------

    def create(
        self,
        actor: Principal,
        *,
        user: str,
        role: str,
        team: str | None = None,
        name: str | None = None,
        expires_at: datetime | None = None,
        restrictions: KeyRestrictions | None = None,
    ) -> CreatedKey:
        roles = self.policy.policy.role_names()
        if role not in roles:
            raise UnknownRole(
                f"unknown role {role!r}: use one of {', '.join(sorted(roles))}, "
                "or declare it under roles in the policy"
            )
        teams = self.policy.policy.teams
        if team is not None and team not in teams:
            # A team the policy does not know would escape its team's models, limits and
            # budgets (a typo as much as a new team).
            known = ", ".join(sorted(teams)) or "none yet"
            raise UnknownTeam(
                f"unknown team {team!r}: declare it under teams in the policy "
                f"(known: {known}), or leave the team out"
            )
        granted = self.permissions_for(role)
        if not granted <= actor.permissions:
            missing = ", ".join(sorted(p.value for p in granted - actor.permissions))
            raise PermissionDenied(
                f"a key with role {role!r} would hold permissions you lack ({missing}): "
                "only a caller who holds every permission of a role can create its keys"
            )
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)  # a time without a zone is UTC
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidKeyRequest("expires_at is in the past: give a future time")
        stored = restrictions.model_dump(exclude_defaults=True) if restrictions else None
        new = generate_key()
        self.ledger.append(
            EventIn(
                actor=actor.actor,
                action="key.create",
                resource=f"key:{new.prefix}",
                outcome="success",
                details={
                    "user": user,
                    "team": team,
                    "role": role,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                    "restrictions": stored,
                },
            )
        )
        row = ApiKey(
            id=new.id,
            prefix=new.prefix,
            digest=new.digest,
            name=name,
            user=user,
            team=team,
            role=role,
            created_at=utcnow(),
            created_by=actor.user,
            expires_at=expires_at,
            restrictions=stored or None,
        )
        with self.db.session() as session:
            KeyRepository(session).add(row)
        return CreatedKey(key=KeyView.of(row), secret=new.secret)

    def list_keys(self, *, include_revoked: bool = False) -> list[KeyView]:
        with self.db.session() as session:
            return [
                KeyView.of(row)
                for row in KeyRepository(session).list_keys(include_revoked=include_revoked)
            ]

    def get(self, key_id: str) -> KeyView:
        with self.db.session() as session:
            row = KeyRepository(session).by_id(key_id) or KeyRepository(session).by_prefix(key_id)
            if row is None:
                raise KeyNotFound(f"no API key {key_id!r}: `bastion keys list` shows the ids")
            return KeyView.of(row)

    def revoke(self, actor: Principal, key_id: str) -> KeyView:
        key = self.get(key_id)
        if key.revoked_at is not None:
            return key
        self.ledger.append(
            EventIn(
                actor=actor.actor,
                action="key.revoke",
                resource=f"key:{key.prefix}",
                outcome="success",
                details={"user": key.user, "role": key.role},
            )
        )
        with self.db.session() as session:
            row = KeyRepository(session).by_id(key.id)
            assert row is not None
            row.revoked_at = utcnow()
            row.revoked_by = actor.user
            view = KeyView.of(row)
        with self._lock:
            self._cache.pop(key.prefix, None)
            self._epoch += 1
        return view

    def ensure_admin(self) -> CreatedKey | None:
        """On first start (no key at all): create an admin key. Never later: a server
        restarted after its admins were revoked must not print a fresh admin key to its
        logs; an operator with the database makes one with `bastion keys create`."""
        with self.db.session() as session:
            if KeyRepository(session).count_keys() > 0:
                return None
        from bastion.auth.principal import SYSTEM

        return self.create(SYSTEM, user="admin", role="admin", name="first admin key")

    # -- authentication -----------------------------------------------------------

    def permissions_for(self, role: str) -> frozenset[Permission]:
        config = self.policy.policy.roles.get(role)
        if config is not None and config.permissions is not None:
            return frozenset(config.permissions)
        return DEFAULT_ROLE_PERMISSIONS.get(role, NEW_ROLE_PERMISSIONS)

    def authenticate_cached(self, secret: str) -> Principal | None:
        """The principal of a key verified within the cache TTL, without touching the
        database (so an event loop may call it); None when only the database can tell."""
        prefix = split_key(secret)
        if prefix is None:
            raise InvalidKey("the API key is not a Bastion key: check it was copied whole")
        cached = self._cache.get(prefix)
        if (
            cached is None
            or cached.until <= time.monotonic()
            or cached.policy_digest != self.policy.current.digest
        ):
            return None
        if not matches(secret, cached.digest):
            raise InvalidKey("the API key is not valid: check it or create a new one")
        if cached.expires_at is not None and cached.expires_at <= utcnow():
            raise ExpiredKey("the API key has expired: ask an admin for a new one")
        return cached.principal

    def authenticate(self, secret: str) -> Principal:
        principal = self.authenticate_cached(secret)
        if principal is not None:
            return principal
        prefix = split_key(secret)
        assert prefix is not None  # authenticate_cached refused anything else
        now = time.monotonic()
        policy_digest = self.policy.current.digest
        epoch = self._epoch
        with self.db.session() as session:
            row = KeyRepository(session).by_prefix(prefix)
            if row is None or not matches(secret, row.digest):
                raise InvalidKey("the API key is not valid: check it or create a new one")
            if row.revoked_at is not None:
                raise RevokedKey("the API key has been revoked: ask an admin for a new one")
            if row.expires_at is not None and row.expires_at <= utcnow():
                raise ExpiredKey("the API key has expired: ask an admin for a new one")
            seen = utcnow()
            if row.last_used_at is None or seen - row.last_used_at >= LAST_USE_EVERY:
                row.last_used_at = seen
            principal = Principal(
                key_id=row.id,
                key_prefix=row.prefix,
                user=row.user,
                team=row.team,
                role=row.role,
                permissions=self.permissions_for(row.role),
                restrictions=_restrictions(row.restrictions),
            )
            entry = _Cached(
                principal, row.digest, row.expires_at, policy_digest, now + self.cache_ttl_s
            )
        if self.cache_ttl_s > 0:
            with self._lock:
                if self._epoch == epoch:
                    self._cache[prefix] = entry
        return principal

    def principal_of(self, key_id: str) -> Principal:
        """The principal of a stored key, by id, checked as :meth:`authenticate` checks
        a presented one (revoked, expired, the role's permissions under today's policy):
        a dashboard session holds the key's id, never its secret."""
        with self.db.session() as session:
            row = KeyRepository(session).by_id(key_id)
            if row is None:
                raise InvalidKey("the API key of this session no longer exists: sign in again")
            if row.revoked_at is not None:
                raise RevokedKey("the API key has been revoked: ask an admin for a new one")
            if row.expires_at is not None and row.expires_at <= utcnow():
                raise ExpiredKey("the API key has expired: ask an admin for a new one")
            return Principal(
                key_id=row.id,
                key_prefix=row.prefix,
                user=row.user,
                team=row.team,
                role=row.role,
                permissions=self.permissions_for(row.role),
                restrictions=_restrictions(row.restrictions),
            )


class InvalidKeyRequest(InvalidInput):
    code = "invalid_key_request"


def _restrictions(stored: dict[str, object] | None) -> KeyRestrictions | None:
    if not stored:
        return None
    return KeyRestrictions.model_validate(stored)
