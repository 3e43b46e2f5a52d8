"""Data generators for the monitoring tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest


def make_frame(n: int, *, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Five numeric and two categorical columns; ``shift`` moves a and b, and the
    category mix of ``colour``."""
    rng = np.random.default_rng(seed)
    mix = [0.5, 0.3, 0.2] if shift == 0 else [0.3, 0.3, 0.4]
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.exponential(1 + shift, n),
            "c": rng.normal(0, 1, n),
            "d": rng.uniform(0, 1, n),
            "e": rng.poisson(4, n).astype(float),
            "colour": rng.choice(["red", "green", "blue"], n, p=mix),
            "size": rng.choice(["s", "m", "l", "xl"], n),
        }
    )


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_frame(20_000, seed=1), make_frame(20_000, shift=0.5, seed=2)


class Receiver:
    """A webhook receiver: answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    # shutdown() waits for the next poll: 0.5 s by default, on every test
    thread = threading.Thread(target=r.server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    thread.join()
