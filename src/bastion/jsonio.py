"""JSON on the gateway's path: orjson where it can, the standard library where it cannot.

Every call is parsed and written several times (the client's request, the upstream's
request and answer, the client's answer, each streamed chunk); orjson does each in a
fraction of the time. Nothing a client could send before is refused or changed now:
what orjson will not read but Python's ``json`` will (``NaN``) is read by ``json``, and
so is a document in which orjson found a float of 2**63 or more (orjson reads an
integer beyond 64 bits as a float, losing digits; ``json`` keeps it whole). What orjson
will not write (such integers, non-string keys) is written by ``json``, with the same
compact separators and UTF-8 text.

Not for the ledger: its canonical JSON stays the standard library's, byte for byte, so
hashes and digests made before and after match.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast

import orjson

#: What :func:`loads` raises for text that is not JSON (both libraries' errors are it).
JSONDecodeError = json.JSONDecodeError


_HUGE = 2.0**63


def _has_huge_float(value: Any) -> bool:
    """Whether a parsed document holds a float of magnitude 2**63 or more: the nodes
    are walked, not the text (a chat request is a few dozen nodes of long strings)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, float) and not -_HUGE < node < _HUGE:
            return True
    return False


def loads(data: bytes | bytearray | str) -> Any:
    """Parse JSON; raises ``ValueError`` (or ``UnicodeDecodeError``) when it is not."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # what orjson refuses but Python reads, or the error
    return json.loads(data) if _has_huge_float(value) else value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (``NaN`` and infinities as ``null``, as orjson writes them)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


_T = TypeVar("_T")


def copy(value: _T) -> _T:
    """A deep copy of parsed JSON: new dicts and lists, the same (immutable) strings,
    numbers, booleans and ``None``; anything else through :func:`copy.deepcopy`.
    Several times faster than ``deepcopy``, which keeps a memo of every node."""
    if isinstance(value, dict):
        return cast(_T, {k: copy(v) for k, v in value.items()})
    if isinstance(value, list):
        return cast(_T, [copy(v) for v in value])
    if value is None or isinstance(value, (str, int, float)):
        return value
    import copy as _copy

    return _copy.deepcopy(value)
