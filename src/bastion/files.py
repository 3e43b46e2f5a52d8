"""Files only their owner may read: keys, secrets."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_private_file(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``data``, atomically.

    Returns False, leaving the file as it was, when it already exists (another process
    may have won the race): the caller then reads what is there.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        os.link(tmp, path)  # fails if the file exists: never half-written, never replaced
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True
