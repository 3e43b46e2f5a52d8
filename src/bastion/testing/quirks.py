"""The liberties an upstream's event stream may take, played onto the fake's frames.

Each is legal under the event-stream rules or seen from OpenAI-compatible servers, and
a gateway relaying the stream must give its client the same answer, ended by exactly
one ``[DONE]``:

================  =================================================================
``crlf`` / ``cr``  lines end with CRLF or a lone CR instead of LF
``keepalive``      comment lines (``: keep-alive``) before and inside events
``tight``          no space after ``data:``
``multiline``      each JSON payload spread over several ``data:`` lines
``double-done``    ``[DONE]`` sent twice
``no-finish``      no ``finish_reason`` in any chunk (the stream still ends in
                   ``[DONE]``), as some servers and pii-leak-benchmark's capture do
``split:SEED``     the stream's bytes cut into pieces at random places (seeded by SEED
                   and the request's messages), each piece written on its own: lines,
                   ``[DONE]`` and UTF-8 characters split anywhere
================  =================================================================
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable

QUIRKS = ("crlf", "cr", "keepalive", "tight", "multiline", "double-done", "no-finish")
KEEPALIVE = ": keep-alive"
DONE = "data: [DONE]"


def _data_lines(value: str, quirks: frozenset[str]) -> list[str]:
    try:
        payload = json.loads(value)
    except ValueError:
        return [value]
    if "no-finish" in quirks and isinstance(payload, dict):
        for choice in payload.get("choices") or []:
            if isinstance(choice, dict) and "finish_reason" in choice:
                choice["finish_reason"] = None
    if "multiline" in quirks:
        return json.dumps(payload, indent=1, ensure_ascii=False).split("\n")
    return [json.dumps(payload, separators=(",", ":"), ensure_ascii=False)]


def _event(frame: bytes, quirks: frozenset[str]) -> list[str]:
    lines: list[str] = []
    if "keepalive" in quirks:
        lines.append(KEEPALIVE)
    for line in frame.decode("utf-8").strip("\n").split("\n"):
        name, _, value = line.partition(": ")
        values = _data_lines(value, quirks) if name == "data" else [value]
        sep = ":" if "tight" in quirks else ": "
        lines += [name + sep + v for v in values]
    return [*lines, ""]


def _cuts(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    if len(data) < 2:
        return [data]
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 40))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def reshape(frames: Iterable[bytes], quirks: frozenset[str], split: int | None) -> list[bytes]:
    """``frames`` (each one ``data: …\\n\\n`` event, LF-ended) as the quirks write them."""
    frames = list(frames)
    if not quirks and split is None:
        return frames
    lines: list[str] = [KEEPALIVE, ""] if "keepalive" in quirks else []
    for frame in frames:
        event = _event(frame, quirks)
        lines += event
        if "double-done" in quirks and frame.strip() == DONE.encode():
            lines += event
    eol = "\r\n" if "crlf" in quirks else "\r" if "cr" in quirks else "\n"
    data = "".join(line + eol for line in lines).encode("utf-8")
    return _cuts(data, split) if split is not None else [data]
