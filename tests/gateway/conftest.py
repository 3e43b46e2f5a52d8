"""The fake LLM upstream (``bastion.testing.upstream``) for the gateway's tests: one
server per session on loopback; ``upstream`` hands it to a test with its state reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bastion.testing import FakeUpstream


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    """The session's fake upstream with no request log and fresh per-name state."""
    fake_upstream.reset(recover=False)
    return fake_upstream
