"""Every policy version that was in force: recorded, listed with diffs, restored.

The runtime records the policy at startup (when its digest differs from the last
version recorded) and after each reload that changed it. ``rollback`` writes an
earlier version's text back to the policy file (atomically) and reloads it, so the
running server's watcher, the ledger (``policy.rollback`` then ``policy.reload``) and
this history all see it like any other change.

Errors: UnknownPolicyVersion (404, unknown_policy_version).
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from sqlalchemy import select

from bastion.db import Database
from bastion.errors import NotFound
from bastion.policy.loader import LoadedPolicy, parse_policy
from bastion.policy.models import PolicyVersionRow


class UnknownPolicyVersion(NotFound):
    code = "unknown_policy_version"


@dataclass(frozen=True)
class PolicyVersion:
    version: int
    digest: str
    previous_digest: str | None
    loaded_by: str
    trigger: str
    loaded_at: str
    source: str
    added: int
    removed: int
    diff: str

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def _diff(before: str, after: str, a: str, b: str) -> tuple[str, int, int]:
    lines = list(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), a, b
        )
    )
    added = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    removed = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    return "".join(lines), added, removed


class PolicyHistory:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self, loaded: LoadedPolicy, *, by: str, trigger: str, previous: str | None = None
    ) -> bool:
        """Record ``loaded`` as in force unless it is the version recorded last."""
        with self.db.session() as session:
            last = session.scalars(
                select(PolicyVersionRow).order_by(PolicyVersionRow.id.desc()).limit(1)
            ).first()
            if last is not None and last.digest == loaded.digest:
                return False
            session.add(
                PolicyVersionRow(
                    digest=loaded.digest,
                    previous_digest=previous or (last.digest if last else None),
                    text=loaded.text,
                    source=loaded.source[:1000],
                    loaded_by=by[:200],
                    trigger=trigger[:50],
                )
            )
        return True

    def versions(self) -> list[PolicyVersion]:
        with self.db.session() as session:
            rows = list(session.scalars(select(PolicyVersionRow).order_by(PolicyVersionRow.id)))
        out = []
        before = ""
        for row in rows:
            diff, added, removed = _diff(before, row.text, "previous", f"version {row.id}")
            out.append(
                PolicyVersion(
                    row.id,
                    row.digest,
                    row.previous_digest,
                    row.loaded_by,
                    row.trigger,
                    row.loaded_at.astimezone(UTC).isoformat(),
                    row.source,
                    added,
                    removed,
                    diff,
                )
            )
            before = row.text
        return out

    def text_of(self, version: int) -> str:
        with self.db.session() as session:
            row = session.get(PolicyVersionRow, version)
            if row is None:
                raise UnknownPolicyVersion(
                    f"no policy version {version}: see bastion policy history"
                )
            return row.text


def write_policy_text(path: Path, text: str) -> None:
    """Validate, then replace the file atomically (a reader never sees half of it)."""
    parse_policy(text, str(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".policy-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
