"""Put the original values back where the model echoed placeholders.

Placeholders are matched as text, not by character offsets (Presidio's de-anonymizer
works on offsets, which an LLM's answer does not keep), in any letter case the model
chose (``<email_1>``, ``<Email_1>``).

Streaming: :class:`StreamRestorer` emits everything it can at once and holds back only
the shortest tail that could still grow into a placeholder: from the last ``<``, and
only while what follows it could be the start of one. Placeholders hold no ``<``, so no
earlier ``<`` can start one that is still open. For any split of a stream into chunks,
the concatenated output equals :func:`restore` of the whole text.

A placeholder of a known tag that the vault never issued is one the model invented:
it is left as it is and reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bastion.privacy.entities import KNOWN_ENTITIES, placeholder_tag
from bastion.privacy.vault import PLACEHOLDER, Vault

#: A tail that may still become a placeholder: ``<``, ``<EMA``, ``<EMAIL_``, ``<EMAIL_1``.
_OPEN_TAIL = re.compile(r"<(?:[A-Za-z][A-Za-z0-9_]*)?")
_MAX_TAIL = 48
KNOWN_TAGS = frozenset(placeholder_tag(e) for e in KNOWN_ENTITIES)

Encoder = Callable[[str], str]


@dataclass
class Restored:
    text: str
    #: Placeholders of a known tag that the vault never issued (as written by the model).
    invented: list[str] = field(default_factory=list)


def _replacer(
    vault: Vault, invented: list[str], encode: Encoder | None
) -> Callable[[re.Match[str]], str]:
    def replace(m: re.Match[str]) -> str:
        original = vault.original(m.group())
        if original is None:
            if m.group(1).upper() in KNOWN_TAGS or m.group(1).upper() in vault.tags():
                invented.append(m.group())
            return m.group()
        return encode(original) if encode is not None else original

    return replace


def restore(text: str, vault: Vault, encode: Encoder | None = None) -> Restored:
    """``text`` with every placeholder the vault knows replaced by its original.

    ``encode`` transforms each original before it is inserted (e.g. JSON string escaping
    inside tool-call arguments).
    """
    invented: list[str] = []
    if "<" not in text:
        return Restored(text, invented)
    return Restored(PLACEHOLDER.sub(_replacer(vault, invented, encode), text), invented)


class StreamRestorer:
    """Restores placeholders across streaming chunks. Not shared between streams."""

    def __init__(self, vault: Vault, encode: Encoder | None = None) -> None:
        self.invented: list[str] = []
        self._replace = _replacer(vault, self.invented, encode)
        self._pending = ""

    def feed(self, chunk: str) -> str:
        """What can be sent now, given one more chunk of the model's output."""
        text = self._pending + chunk
        cut = len(text)
        lt = text.rfind("<")
        if lt >= 0 and len(text) - lt <= _MAX_TAIL and _OPEN_TAIL.fullmatch(text, lt):
            cut = lt
        self._pending = text[cut:]
        ready = text[:cut]
        return PLACEHOLDER.sub(self._replace, ready) if "<" in ready else ready

    def flush(self) -> str:
        """The held-back tail, at the end of the stream."""
        rest, self._pending = self._pending, ""
        return PLACEHOLDER.sub(self._replace, rest) if "<" in rest else rest

    @property
    def pending(self) -> str:
        return self._pending
