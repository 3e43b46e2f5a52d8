"""Playing an answer onto the connection, including the ways it can go wrong.

A ``Wire`` is an ASGI response: it either drops the connection
(``reset``: RST before any header), wait for the client to leave (``hang``), or send
the headers, wait ``first_delay_s``, send the frames and end as told: ``end`` (a
complete body), ``close`` (flush and close the TCP connection, so a chunked body is
left unfinished), ``stall`` (keep the connection open and send nothing).

Transport-level acts need the socket under the ASGI server. Uvicorn's ``receive`` is a
bound method of its request cycle, which holds the transport; ``transport_of`` finds it
there and raises if the server is not uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Sequence
from typing import Any, Literal

from starlette.types import Receive, Scope, Send

Ending = Literal["end", "close", "stall", "reset", "hang"]


def transport_of(receive: Receive) -> asyncio.Transport:
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        raise RuntimeError("the fake upstream drops connections only when served by uvicorn")
    return transport  # type: ignore[no-any-return]


def reset(transport: asyncio.Transport) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed server or a middlebox would."""
    sock = transport.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def until_gone(receive: Receive, closing: asyncio.Event) -> bool:
    """Wait until the client disconnects (True) or the server is closing (False)."""
    gone = asyncio.ensure_future(_disconnected(receive))
    stop = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait((gone, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (gone, stop):
            task.cancel()
    return gone.done() and not gone.cancelled()


class Wire:
    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        frames: Sequence[bytes] = (),
        *,
        closing: asyncio.Event,
        ending: Ending = "end",
        first_delay_s: float = 0.0,
    ) -> None:
        self.status = status
        self.headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.frames = frames
        self.closing = closing
        self.ending = ending
        self.first_delay_s = first_delay_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ending == "reset":
            reset(transport_of(receive))
            await _disconnected(receive)  # so uvicorn does not answer in our place
            return
        if self.ending == "hang":
            if not await until_gone(receive, self.closing):
                reset(transport_of(receive))
                await _disconnected(receive)
            return
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        if self.first_delay_s:
            await asyncio.sleep(self.first_delay_s)
        body: dict[str, Any] = {"type": "http.response.body", "more_body": True}
        for frame in self.frames:
            await send({**body, "body": frame})
        if self.ending == "end":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif self.ending == "close":
            transport_of(receive).close()  # flushes what was written, then FIN
            await _disconnected(receive)
        elif not await until_gone(receive, self.closing):  # stall
            reset(transport_of(receive))
            await _disconnected(receive)
