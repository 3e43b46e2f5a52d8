"""Signed checkpoints published outside the database: the anchors.

Checkpoints kept only in the database fall with it: whoever can delete the tail of a
stream can delete the checkpoints after it too. Each checkpoint the writer signs (and
each retention seal) is therefore also written to a directory the database's writers
cannot reach (``BASTION_AUDIT_ANCHOR_DIR``: a mount of another host, an object-store
bucket with object lock, a WORM share), one file per checkpoint, never overwritten:
``<stream>/<seq, 12 digits>-<kind>.json``. Optionally each is also POSTed to a witness
over HTTP (``BASTION_AUDIT_WITNESS_URL``), who keeps its own copy.

``bastion audit verify --anchors DIR`` checks the database against those files (see
:mod:`bastion.audit.verify`): a stream that is gone, a tail that was cut, a history
that was rewritten.

AnchorError (400, invalid_anchor) — an anchor file that cannot be read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.audit.signing import verify_signature
from bastion.errors import InvalidInput

log = logging.getLogger("bastion.audit")


class AnchorError(InvalidInput):
    code = "invalid_anchor"


@dataclass(frozen=True)
class SignedCheckpoint:
    stream: str
    seq: int
    hash: str
    ts_us: int
    key_id: str
    signature: str
    root: str | None = None
    chain: str = "sha256"
    kind: str = "checkpoint"
    frontier: str | None = None

    def verifies(self, trusted: dict[str, Ed25519PublicKey]) -> bool | None:
        """True or False; None when the key is not trusted."""
        public = trusted.get(self.key_id)
        if public is None:
            return None
        return verify_signature(
            public,
            self.stream,
            self.seq,
            self.hash,
            self.ts_us,
            self.signature,
            root=self.root,
            chain=self.chain,
            kind=self.kind,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"format": "bastion-checkpoint/2", **asdict(self)}

    @property
    def filename(self) -> str:
        return f"{self.stream}/{self.seq:012d}-{self.kind}.json"

    @classmethod
    def from_row(cls, row: dict[str, Any], chain: str) -> SignedCheckpoint:
        return cls(
            stream=str(row["stream"]),
            seq=int(row["seq"]),
            hash=str(row["hash"]),
            ts_us=int(row["ts_us"]),
            key_id=str(row["key_id"]),
            signature=str(row["signature"]),
            root=row.get("root"),
            chain=chain,
            kind=str(row.get("kind") or "checkpoint"),
            frontier=row.get("frontier"),
        )


class AnchorPublisher:
    """Writes each signed checkpoint to the anchor directory (and the witness)."""

    def __init__(
        self, directory: Path | None, witness_url: str | None = None, timeout_s: float = 5.0
    ) -> None:
        self.directory = directory
        self.witness_url = witness_url
        self.timeout_s = timeout_s
        self.published = 0
        self.last_error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.directory is not None or self.witness_url is not None

    def publish(self, checkpoints: list[SignedCheckpoint]) -> None:
        """Never raises: the checkpoint is in the database already; a failure to anchor
        is logged and counted (``last_error``), and the next checkpoint is tried again."""
        for cp in checkpoints:
            try:
                if self.directory is not None:
                    write_anchor(self.directory, cp)
                if self.witness_url is not None:
                    self._witness(cp)
                self.published += 1
            except Exception as exc:
                self.last_error = type(exc).__name__
                log.error(
                    "could not publish a signed checkpoint outside the database",
                    extra={"error": self.last_error, "stream": cp.stream, "seq": cp.seq},
                )

    def _witness(self, cp: SignedCheckpoint) -> None:
        import httpx

        response = httpx.post(self.witness_url or "", json=cp.to_dict(), timeout=self.timeout_s)
        response.raise_for_status()


def write_anchor(directory: Path, cp: SignedCheckpoint) -> bool:
    """Write one anchor file, never replacing one: False if it exists already.

    Written to a temporary name and hard-linked into place, so a reader never sees half
    a file and two writers cannot both create it."""
    target = directory / cp.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(cp.to_dict(), sort_keys=True, indent=1).encode() + b"\n"
    tmp = target.parent / f".{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return True


def load_anchors(directory: Path) -> list[SignedCheckpoint]:
    """Every anchor under ``directory``, ordered by stream and seq."""
    if not directory.is_dir():
        raise AnchorError(f"{directory} is not a directory of anchors (BASTION_AUDIT_ANCHOR_DIR)")
    found = []
    for path in sorted(directory.glob("*/*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data.pop("format", None)
            found.append(SignedCheckpoint(**data))
        except (OSError, ValueError, TypeError) as exc:
            raise AnchorError(f"anchor {path} cannot be read: {type(exc).__name__}") from None
    return sorted(found, key=lambda cp: (cp.stream, cp.seq))
