"""JSON on the gateway's path: orjson where it can, the standard library where it cannot.

Every call is parsed and written several times (the client's request, the upstream's
request and answer, the client's answer, each streamed chunk); orjson does each in a
fraction of the time. No value is changed on the way: a document in which orjson found
a float of 2**63 or more is read again by ``json`` (orjson reads an integer beyond 64
bits as a float, losing digits; ``json`` keeps it whole), and what orjson will not
write (such integers, non-string keys) is written by ``json``, with the same compact
separators and UTF-8 text.

``NaN`` and ``Infinity`` are not JSON. A client's request holding them is refused
(``constants=False``: no provider would take them, and orjson would write them as
``null``, changing the request); an upstream's answer holding them is read, as Python's
``json`` reads them, and written to the client as ``null``.

Not for the ledger: its canonical JSON stays the standard library's, byte for byte, so
hashes and digests made before and after match.
"""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any, NoReturn, TypeVar, cast

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


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON: send a number or null")


def loads(data: bytes | bytearray | str, *, constants: bool = True) -> Any:
    """Parse JSON; raises ``ValueError`` (or ``UnicodeDecodeError``) when it is not.
    ``constants=False`` refuses ``NaN`` and ``±Infinity`` too."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        # What orjson refuses but Python reads (the constants), or the error.
        return json.loads(data) if constants else json.loads(data, parse_constant=_refuse_constant)
    return json.loads(data) if _has_huge_float(value) else value


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON (``NaN`` and infinities, which only an upstream can have
    sent, as ``null``, as orjson writes them); ``sort_keys``: object keys in order."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys
        ).encode()


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
    return deepcopy(value)
