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

A client's request (:func:`loads_request`, or ``constants=False``) is read strictly, so
that nothing past the parser meets what it cannot handle: a lone surrogate (``"\\ud800"``,
which no UTF-8 writer, database or provider takes), a number too large for a double
(``1e400``), nesting deeper than :data:`MAX_DEPTH`, and U+0000 in a string or key
(PostgreSQL cannot store it, and it splits words the privacy guard looks for) are
refused with a :class:`JSONDecodeError` saying which, never read and never a crash.

Not for the ledger: its canonical JSON stays the standard library's, byte for byte, so
hashes and digests made before and after match.
"""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any, TypeVar, cast

import orjson

#: What :func:`loads` raises for text that is not JSON (both libraries' errors are it).
JSONDecodeError = json.JSONDecodeError


_HUGE = 2.0**63
#: How deeply a client's document may nest. A chat request with tool schemas nests a
#: dozen levels; Python's own recursion (``json``, ``copy``, the privacy mapping) would
#: fail near a thousand.
MAX_DEPTH = 64


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


def loads(data: bytes | bytearray | str, *, constants: bool = True) -> Any:
    """Parse JSON; raises ``ValueError`` (or ``UnicodeDecodeError``) when it is not.
    ``constants=False`` reads a client's request: :func:`loads_request`."""
    if not constants:
        return loads_request(data)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        # What orjson refuses but Python reads (the constants, lone surrogates, deep
        # nesting), or the error.
        return _stdlib_loads(data)
    return _stdlib_loads(data) if _has_huge_float(value) else value


def _stdlib_loads(data: bytes | bytearray | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise JSONDecodeError("nested too deeply", _text(data), 0) from None


def _text(data: bytes | bytearray | str) -> str:
    return data if isinstance(data, str) else bytes(data[:200]).decode("utf-8", "replace")


def loads_request(data: bytes | bytearray | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a client's JSON strictly (see the module's docstring); raises
    :class:`JSONDecodeError` whose ``msg`` says what is wrong, in words for the client."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        found = exc.doc[exc.pos : exc.pos + 9] if isinstance(exc.doc, str) else ""
        for constant in ("NaN", "Infinity"):
            if found.startswith(constant):
                sign = "-" if exc.doc[exc.pos - 1 : exc.pos] == "-" else ""
                raise JSONDecodeError(
                    f"{sign}{constant} is not JSON: send a number or null", exc.doc, exc.pos
                ) from None
        reason = exc.msg
        if "surrogate" in reason:
            reason = f"{reason} (a lone UTF-16 surrogate escape is not text: send UTF-8)"
        elif "depth" in reason:
            reason = f"nested more than {max_depth} levels deep"
        elif "infinity" in reason:
            reason = "a number is too large for a double"
        raise JSONDecodeError(reason, exc.doc, exc.pos) from None
    huge = _check_request(value, max_depth, data)
    return _stdlib_loads(data) if huge else value


def _check_request(value: Any, max_depth: int, data: bytes | bytearray | str) -> bool:
    """Walk a client's parsed document once: refuse nesting past ``max_depth`` and NUL
    characters; say whether it holds a float of 2**63 or more (an integer orjson could
    not keep whole)."""
    huge = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise JSONDecodeError("a string holds U+0000 (NUL): remove it", _text(data), 0)
        elif isinstance(node, dict):
            if depth > max_depth:
                raise JSONDecodeError(f"nested more than {max_depth} levels deep", _text(data), 0)
            for key, item in node.items():
                if "\x00" in key:
                    raise JSONDecodeError(
                        "an object key holds U+0000 (NUL): remove it", _text(data), 0
                    )
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            if depth > max_depth:
                raise JSONDecodeError(f"nested more than {max_depth} levels deep", _text(data), 0)
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, float) and not -_HUGE < node < _HUGE:
            huge = True
    return huge


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
