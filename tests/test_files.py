"""Secrets on disk: readable by their owner only, never half-written or replaced."""

from __future__ import annotations

import stat
from pathlib import Path

from bastion.files import create_private_file


def test_a_private_file_is_0600_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret.key"
    assert create_private_file(path, b"first")
    assert not create_private_file(path, b"second")
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary left


def test_the_runtime_keeps_its_keys_private(runtime) -> None:  # type: ignore[no-untyped-def]
    home = runtime.settings.home
    for name in ("secret.key", "audit-signing-key.pem"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
