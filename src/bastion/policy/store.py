"""The policy in force, and its reload.

A reload reads the file, validates it whole, and only then swaps it in: a bad file is
rejected and the old policy stays in force. Readers take ``store.current`` (one
attribute read), so a swap never shows a half-loaded policy.

Parts that build something from the policy (the gateway's privacy guard, say) add a
check to ``checks``: it runs on a reloaded policy before the swap, and a
:class:`PolicyError` it raises rejects the file like any other error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bastion.db.base import utcnow
from bastion.policy.loader import LoadedPolicy, PolicyError, load_policy
from bastion.policy.schema import Policy


@dataclass(frozen=True)
class ReloadOutcome:
    changed: bool
    digest: str
    previous_digest: str | None
    error: PolicyError | None = None


class PolicyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._current: LoadedPolicy | None = None
        self._signature: tuple[int, ...] | None = None
        self.loaded_at: datetime | None = None
        self.checks: list[Callable[[Policy], None]] = []

    @property
    def current(self) -> LoadedPolicy:
        loaded = self._current
        if loaded is None:
            raise RuntimeError("the policy has not been loaded")
        return loaded

    @property
    def policy(self) -> Policy:
        return self.current.policy

    @property
    def is_loaded(self) -> bool:
        return self._current is not None

    def load(self) -> LoadedPolicy:
        """First load: raises :class:`PolicyError` when the file is bad."""
        with self._lock:
            signature = self._stat()
            loaded = load_policy(self.path)
            self._swap(loaded, signature)
            return loaded

    def reload(self) -> ReloadOutcome:
        """Load the file again; on error keep the policy in force."""
        with self._lock:
            previous = self._current.digest if self._current else None
            signature = self._stat()
            try:
                loaded = load_policy(self.path)
                if loaded.digest != previous:
                    for check in self.checks:
                        check(loaded.policy)
            except PolicyError as exc:
                self._signature = signature  # do not retry the same bad file every tick
                return ReloadOutcome(False, previous or "", previous, exc)
            changed = loaded.digest != previous
            self._swap(loaded, signature)
            return ReloadOutcome(changed, loaded.digest, previous)

    def file_changed(self) -> bool:
        """Cheap check for the watcher: has the file's size or mtime moved?"""
        return self._stat() != self._signature

    def _swap(self, loaded: LoadedPolicy, signature: tuple[int, ...] | None) -> None:
        self._current = loaded
        self._signature = signature
        self.loaded_at = utcnow()

    def _stat(self) -> tuple[int, ...] | None:
        # inode and ctime too: editors that replace the file, or an edit of the same
        # size within the filesystem's mtime granularity, still count as a change
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
