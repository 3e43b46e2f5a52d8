"""Masking operators: what replaces a finding.

- ``placeholder``: ``<EMAIL_1>``; the same value is the same placeholder for the whole
  conversation (the vault remembers), so the model can still reason about "who".
- ``redact``: a fixed replacement (``[REDACTED]``).
- ``partial``: letters and digits hidden except the last four; separators kept.
- ``hash``: a keyed HMAC-SHA256 of the normalised value: equal values give equal
  tokens, and without the key nobody can test a guess (a plain hash of a phone number
  is reversed by enumeration).
- ``encrypt``: AES-256-GCM with a random nonce and the entity type as associated data,
  so a token that was altered, or moved to another type, fails to decrypt instead of
  decrypting to garbage (Presidio's encrypt operator is AES-CBC without a MAC).
- ``block``: the request is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.privacy.config import OperatorSpec
from bastion.privacy.entities import Span, normalise, placeholder_tag
from bastion.privacy.errors import DecryptionFailed, PrivacyBlocked, PrivacyConfigError
from bastion.privacy.vault import Vault

_TOKEN = re.compile(r"<([A-Z][A-Z0-9_]*):enc:([A-Za-z0-9_-]+)>")
_NONCE = 12


@dataclass(frozen=True, slots=True)
class PrivacyKeys:
    """Secrets for the keyed operators; built from Settings, never from the policy."""

    hmac_key: bytes | None = None
    #: 16, 24 or 32 bytes (AES-128/192/256).
    encryption_key: bytes | None = None

    def __post_init__(self) -> None:
        if self.encryption_key is not None and len(self.encryption_key) not in (16, 24, 32):
            raise PrivacyConfigError(
                "the privacy encryption key must be 16, 24 or 32 bytes (use 32 for AES-256)"
            )
        if self.hmac_key is not None and len(self.hmac_key) < 16:
            raise PrivacyConfigError("the privacy HMAC key must be at least 16 bytes")


def partial(value: str, keep_last: int = 4, mask_char: str = "*") -> str:
    """``4111 1111 1111 1234`` -> ``**** **** **** 1234``."""
    alnum = sum(ch.isalnum() for ch in value)
    hide = max(0, alnum - keep_last)
    out = []
    for ch in value:
        if ch.isalnum() and hide:
            out.append(mask_char)
            hide -= 1
        else:
            out.append(ch)
    return "".join(out)


def keyed_hash(key: bytes, entity_type: str, value: str) -> str:
    digest = hmac.new(key, normalise(entity_type, value).encode(), hashlib.sha256).hexdigest()
    return f"<{placeholder_tag(entity_type)}:{digest[:16]}>"


def encrypt(key: bytes, entity_type: str, value: str) -> str:
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), entity_type.encode())
    token = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
    return f"<{entity_type}:enc:{token}>"


def decrypt(key: bytes, token: str) -> str:
    """The original value of an ``encrypt`` token; DecryptionFailed if altered."""
    m = _TOKEN.fullmatch(token.strip())
    if m is None:
        raise DecryptionFailed("not an encrypted privacy token (expected <TYPE:enc:...>)")
    entity_type, body = m.groups()
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], entity_type.encode())
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed(
            "the encrypted token was altered or the key is wrong; it cannot be restored"
        ) from exc
    return plain.decode()


def decrypt_all(key: bytes, text: str) -> str:
    """Every encrypted token in ``text`` replaced by its original."""
    return _TOKEN.sub(lambda m: decrypt(key, m.group()), text)


class Operators:
    """Applies the policy's operator for each span's type."""

    def __init__(
        self, specs: dict[str, OperatorSpec], default: OperatorSpec, keys: PrivacyKeys
    ) -> None:
        self.specs = specs
        self.default = default
        self.keys = keys
        needed = {s.type for s in (*specs.values(), default)}
        if "hash" in needed and keys.hmac_key is None:
            raise PrivacyConfigError("the policy uses the hash operator but no HMAC key is set")
        if "encrypt" in needed and keys.encryption_key is None:
            raise PrivacyConfigError(
                "the policy uses the encrypt operator but no encryption key is set"
            )

    def spec(self, entity_type: str) -> OperatorSpec:
        return self.specs.get(entity_type, self.default)

    def replacement(self, span: Span, vault: Vault) -> str:
        spec = self.spec(span.entity_type)
        kind = spec.type
        if kind == "placeholder":
            return vault.placeholder(span.entity_type, span.text)
        if kind == "redact":
            return spec.replacement
        if kind == "partial":
            return partial(span.text, spec.keep_last, spec.mask_char)
        if kind == "hash":
            assert self.keys.hmac_key is not None
            return keyed_hash(self.keys.hmac_key, span.entity_type, span.text)
        if kind == "encrypt":
            assert self.keys.encryption_key is not None
            return encrypt(self.keys.encryption_key, span.entity_type, span.text)
        raise PrivacyBlocked(
            f"the request contains {span.entity_type}, which the privacy policy does not allow "
            "to leave; remove it and retry",
            entity_type=span.entity_type,
        )

    def apply(self, text: str, spans: list[Span], vault: Vault) -> str:
        """``text`` with every span replaced; spans must not overlap (the analyzer's)."""
        if not spans:
            return text
        # Blocks first, so that a refused request leaves nothing in the vault.
        for span in spans:
            if self.spec(span.entity_type).type == "block":
                self.replacement(span, vault)
        parts: list[str] = []
        pos = 0
        for span in spans:
            parts.append(text[pos : span.start])
            parts.append(self.replacement(span, vault))
            pos = span.end
        parts.append(text[pos:])
        return "".join(parts)
