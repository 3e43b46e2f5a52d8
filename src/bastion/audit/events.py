"""What goes into the ledger, and how a row is hashed.

Two chain formats, named per stream in ``audit_streams.chain``:

- ``sha256`` (streams written before the keyed chain): a row's hash is
  ``sha256(prev_hash + "\\n" + canonical)`` where ``canonical`` is the compact JSON array
  of the chained fields in a fixed order. Anyone who knows the algorithm and can write
  to the database can recompute it after editing a row.
- ``hmac-sha256`` (every stream written since): ``HMAC-SHA256(chain_key, prev_hash +
  "\\n" + canonical)``, with ``actor`` and ``resource`` replaced in ``canonical`` by their
  keyed digests (:meth:`ChainKey.ident`). The key is not in the database, so database
  access alone cannot recompute the chain; and since only the digest of an identifier
  is chained, erasure can replace the identifier in the row by ``erased:<digest>``
  and the row still verifies.

``details`` and ``flags`` are themselves stored as canonical JSON text, so verification
hashes exactly the bytes that are stored. The first row of a stream links to
``genesis(stream)``, so rows cannot be moved from one stream to another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from bastion.errors import Unavailable


class LedgerUnavailable(Unavailable):
    code = "audit_unavailable"


@dataclass(frozen=True)
class EventIn:
    actor: str
    action: str
    resource: str
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    request_id: str | None = None
    # Erasable content: digested into the chain always, stored only when asked to.
    content: dict[str, str] | None = None
    store_content: bool = False
    subject: str | None = None


@dataclass(frozen=True)
class Receipt:
    stream: str
    seq: int
    hash: str
    ts_us: int


class Ledger(Protocol):
    def append(self, event: EventIn) -> Receipt: ...

    async def append_async(self, event: EventIn) -> Receipt: ...


def _make_compact() -> Callable[[Any], str]:
    """Compact, key-sorted, non-ASCII-preserving JSON: ``json.dumps`` with those options.

    ``JSONEncoder.encode`` builds a new C encoder on every call, which costs more than
    the hashing it feeds; the C encoder built once is ~40% faster on a ledger row.
    Used only for the hash body, whose fields are str, int or None; caller-supplied
    ``details`` go through :func:`canonical_json` (``json.dumps``), which explains a
    value it cannot encode. ``tests/audit/test_ledger.py`` checks both agree.
    """
    from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

    if c_make_encoder is None:  # pragma: no cover - only without CPython's _json
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode
    iterencode = c_make_encoder(None, None, encode_basestring, None, ":", ",", True, False, True)
    return lambda value: "".join(iterencode(value, 0))


_compact = _make_compact()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def genesis(stream: str) -> str:
    return hashlib.sha256(f"bastion-ledger-genesis:{stream}".encode()).hexdigest()


class ChainFields(NamedTuple):
    """The fields a ledger row's hash covers, in the one order the chain uses.

    Build it with keywords (``ChainFields(stream=..., seq=...)``): the order is defined
    here once, and a row hashed with fields in the wrong place cannot be written.
    """

    stream: str
    seq: int
    ts_us: int
    actor: str
    action: str
    resource: str
    outcome: str
    request_id: str | None
    details: str
    content_digest: str | None
    flags: str


def chain_hash(prev_hash: str, fields: ChainFields) -> str:
    """``sha256(prev_hash + "\\n" + canonical)``, canonical the compact JSON of ``fields``."""
    body = _compact(fields)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


#: Chain format of streams written before the keyed chain.
CHAIN_SHA256 = "sha256"
#: Chain format of new streams: keyed MAC, identifiers chained as keyed digests.
CHAIN_HMAC = "hmac-sha256"
#: How an identifier replaced by erasure starts: ``erased:<its keyed digest>``.
ERASED = "erased:"


class ChainKey:
    """The keyed chain: a MAC key that is not in the database, and the identifier digests.

    HMAC-SHA256 is computed from pads hashed once (the standard construction, checked
    against :func:`hmac.new` in the tests): ``hmac.new`` per row would cost three times
    the plain hash on a ledger row."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the chain key must be at least 16 bytes")
        self.key = key
        mac_key = hmac.digest(key, b"bastion-audit-chain-mac:v1", "sha256").ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in mac_key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in mac_key))
        self._ident_key = hmac.digest(key, b"bastion-audit-ident:v1", "sha256")
        self._idents: dict[str, str] = {}

    def mac(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def digest_of(self, value: str) -> str:
        """The keyed digest (32 hex) an identifier is chained and erased as."""
        return hmac.digest(self._ident_key, value.encode(), "sha256").hex()[:32]

    def ident(self, value: str) -> str:
        """What the chain holds for an identifier: its keyed digest (an erased one
        already is its digest)."""
        found = self._idents.get(value)
        if found is None:
            found = value[len(ERASED) :] if value.startswith(ERASED) else self.digest_of(value)
            if len(self._idents) < 100_000:  # actors and resources repeat; bounded memory
                self._idents[value] = found
        return found

    def erased(self, value: str) -> str:
        return ERASED + self.digest_of(value)

    def chain_hash(self, prev_hash: str, fields: ChainFields) -> str:
        # A plain tuple encodes as the same JSON array as ChainFields, without the cost of
        # NamedTuple._replace; identifiers through the cache first (they repeat).
        idents = self._idents
        stream, seq, ts_us, actor, action, resource, outcome, request_id, details, cd, flags = (
            fields
        )
        a = idents.get(actor) or self.ident(actor)
        r = idents.get(resource) or self.ident(resource)
        body = _compact((stream, seq, ts_us, a, action, r, outcome, request_id, details, cd, flags))
        inner = self._inner.copy()
        inner.update(f"{prev_hash}\n{body}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def hasher_for(chain: str, key: ChainKey | None) -> Callable[[str, ChainFields], str] | None:
    """The row hash function of a chain format; None when the format needs a key we lack."""
    if chain == CHAIN_SHA256:
        return chain_hash
    if chain == CHAIN_HMAC and key is not None:
        return key.chain_hash
    return None


class Digester:
    """Keyed digests (HMAC-SHA256) of erasable content, so the chain never holds it."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the digest key must be at least 16 bytes")
        self._key = key

    def digest(self, content: dict[str, str]) -> str:
        return hmac.new(self._key, canonical_json(content).encode(), hashlib.sha256).hexdigest()
