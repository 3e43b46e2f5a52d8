"""The policy in force, whether the file on disk still validates, and its history.

What an admin checks before and after editing the policy: the digest in force (and the
history version it is), whether the file as it stands now would load (a bad edit is
rejected by the watcher and the old policy stays in force, so "in force" and "on disk"
can differ), and the versions that were in force before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bastion.policy.history import PolicyHistory, PolicyVersion
from bastion.policy.loader import PolicyError, load_policy
from bastion.policy.store import PolicyStore


@dataclass(frozen=True)
class PolicyStatus:
    digest: str
    source: str
    loaded_at: datetime | None
    #: The history version whose digest is in force (None before it was recorded).
    version: int | None
    #: Whether the file on disk validates now, and whether it is what is in force.
    file_valid: bool
    file_in_force: bool
    issues: list[str]
    #: Newest first.
    versions: list[PolicyVersion]


def policy_status(
    store: PolicyStore, history: PolicyHistory, *, versions: int = 20
) -> PolicyStatus:
    current = store.current
    issues: list[str] = []
    on_disk: str | None = None
    try:
        on_disk = load_policy(store.path).digest
    except PolicyError as exc:
        issues = [str(issue) for issue in exc.issues] or [exc.message]
    recorded = history.versions()
    version = next((v.version for v in reversed(recorded) if v.digest == current.digest), None)
    return PolicyStatus(
        digest=current.digest,
        source=current.source,
        loaded_at=store.loaded_at,
        version=version,
        file_valid=on_disk is not None,
        file_in_force=on_disk == current.digest,
        issues=issues,
        versions=list(reversed(recorded))[:versions],
    )
