"""API key format and digests.

A key reads ``bst_<8-char id>_<32-char secret>``. The ``bst_<id>`` prefix is shown in
lists and logs so people can tell keys apart; the whole key has ~190 bits of entropy,
so a single SHA-256 is the right digest (a slow password hash would only slow every
request down without adding safety). Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

ALPHABET = string.ascii_letters + string.digits
KEY_RE = re.compile(r"^(bst_[A-Za-z0-9]{8})_([A-Za-z0-9]{32})$")


@dataclass(frozen=True)
class NewKey:
    id: str
    prefix: str
    secret: str  # the whole key, shown once
    digest: str


def _random(n: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def generate_key() -> NewKey:
    key_id = _random(8)
    prefix = f"bst_{key_id}"
    secret = f"{prefix}_{_random(32)}"
    return NewKey(id=key_id, prefix=prefix, secret=secret, digest=digest(secret))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def split_key(secret: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    match = KEY_RE.match(secret)
    return match.group(1) if match else None


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
