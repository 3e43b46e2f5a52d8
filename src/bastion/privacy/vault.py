"""The per-conversation vault: which placeholder stands for which original value.

A :class:`Vault` belongs to one conversation (the id the client sends, else one
request). A :class:`VaultStore` holds the live vaults of a process, drops those unused
for longer than their time-to-live, and bounds how many it keeps.

Safe under concurrency: every method takes a lock and does a few dictionary operations
under it, never awaiting, so it is safe from threads and from asyncio tasks alike (LLM
Guard's vault is one global list with no lock). Nothing is written anywhere: a vault
leaves the process only through :meth:`Vault.seal`, which encrypts it (AES-GCM), for a
shared store such as Redis.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.privacy.entities import normalise, placeholder_tag
from bastion.privacy.errors import DecryptionFailed

PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z0-9_]*)_(\d{1,6})>")


class Vault:
    def __init__(self, conversation_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.conversation_id = conversation_id
        self._clock = clock
        self._lock = threading.Lock()
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, tuple[str, str]] = {}
        self._counters: dict[str, int] = {}
        self.last_used = clock()

    def placeholder(self, entity_type: str, value: str) -> str:
        """The placeholder for ``value``: the same one every time in this conversation."""
        key = (entity_type, normalise(entity_type, value))
        with self._lock:
            self.last_used = self._clock()
            found = self._by_value.get(key)
            if found is not None:
                return found
            tag = placeholder_tag(entity_type)
            n = self._counters.get(tag, 0) + 1
            self._counters[tag] = n
            placeholder = f"<{tag}_{n}>"
            self._by_value[key] = placeholder
            self._by_placeholder[placeholder] = (entity_type, value)
            return placeholder

    def original(self, placeholder: str) -> str | None:
        """The value behind ``placeholder`` (any letter case), or None."""
        with self._lock:
            self.last_used = self._clock()
            hit = self._by_placeholder.get(placeholder.upper())
        return None if hit is None else hit[1]

    def entries(self) -> list[tuple[str, str, str]]:
        """``(placeholder, entity_type, original)`` for every value in the vault."""
        with self._lock:
            return [(p, t, v) for p, (t, v) in self._by_placeholder.items()]

    def tags(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._counters)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_placeholder)

    def seal(self, key: bytes) -> bytes:
        """The vault encrypted with AES-GCM (the conversation id is bound as AAD)."""
        payload = json.dumps({"entries": self.entries()}).encode()
        nonce = os.urandom(12)
        return nonce + AESGCM(key).encrypt(nonce, payload, self.conversation_id.encode())

    @classmethod
    def unseal(
        cls,
        blob: bytes,
        key: bytes,
        conversation_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> Vault:
        try:
            payload = AESGCM(key).decrypt(blob[:12], blob[12:], conversation_id.encode())
        except (InvalidTag, ValueError) as exc:
            raise DecryptionFailed(
                "the sealed vault was altered, belongs to another conversation, or the key is wrong"
            ) from exc
        vault = cls(conversation_id, clock)
        for placeholder, entity_type, value in json.loads(payload)["entries"]:
            vault._by_value[(entity_type, normalise(entity_type, value))] = placeholder
            vault._by_placeholder[placeholder] = (entity_type, value)
            m = PLACEHOLDER.fullmatch(placeholder)
            if m is not None:
                tag, n = m.group(1), int(m.group(2))
                vault._counters[tag] = max(vault._counters.get(tag, 0), n)
        return vault


class VaultStore:
    """The live vaults of one process, by conversation id, with a time-to-live."""

    def __init__(
        self,
        ttl_seconds: float = 3600.0,
        max_vaults: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl_seconds
        self.max_vaults = max_vaults
        self._clock = clock
        self._lock = threading.Lock()
        self._vaults: OrderedDict[str, Vault] = OrderedDict()

    def get(self, conversation_id: str | None = None) -> Vault:
        """The conversation's vault, new if absent or expired; None: a one-request vault."""
        if conversation_id is None:
            return Vault(f"request-{uuid.uuid4().hex}", self._clock)
        now = self._clock()
        with self._lock:
            vault = self._vaults.get(conversation_id)
            if vault is not None and now - vault.last_used > self.ttl:
                vault = None
            if vault is None:
                vault = Vault(conversation_id, self._clock)
                self._vaults[conversation_id] = vault
            self._vaults.move_to_end(conversation_id)
            vault.last_used = now
            while len(self._vaults) > self.max_vaults:
                self._vaults.popitem(last=False)
            return vault

    def drop(self, conversation_id: str) -> bool:
        with self._lock:
            return self._vaults.pop(conversation_id, None) is not None

    def sweep(self) -> int:
        """Drop expired vaults; returns how many."""
        now = self._clock()
        with self._lock:
            dead = [k for k, v in self._vaults.items() if now - v.last_used > self.ttl]
            for k in dead:
                del self._vaults[k]
            return len(dead)

    def __len__(self) -> int:
        with self._lock:
            return len(self._vaults)
