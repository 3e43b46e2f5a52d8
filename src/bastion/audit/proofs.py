"""Inclusion proofs: one event shown to be in the signed ledger, without the rest of it.

``prove_event`` builds a self-contained bundle: the event (as exported, with its row
hash), its leaf index, the size of the stream's Merkle tree at a signed checkpoint, the
audit path, and that checkpoint with its signature. ``check_proof`` needs only the
bundle and the signer's public key: the signature must verify, and the path must lead
from the event's row hash to the signed root.

ProofError (400, proof_unavailable) — no proof can be built (unknown event, no signed
root covers it yet, or the rows no longer match the signed root).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from bastion.audit.anchors import SignedCheckpoint
from bastion.audit.merkle import Frontier, inclusion_proof, verify_inclusion
from bastion.audit.models import AuditCheckpoint, AuditEvent, AuditStream
from bastion.audit.repository import EventView
from bastion.db import Database
from bastion.errors import InvalidInput


class ProofError(InvalidInput):
    code = "proof_unavailable"


def prove_event(db: Database, event_id: int) -> dict[str, Any]:
    with db.session() as session:
        row = session.get(AuditEvent, event_id)
        if row is None:
            raise ProofError(f"no ledger event has id {event_id}")
        chain = session.scalar(select(AuditStream.chain).where(AuditStream.id == row.stream))
        cp = session.scalars(
            select(AuditCheckpoint)
            .where(
                AuditCheckpoint.stream == row.stream,
                AuditCheckpoint.seq >= row.seq,
                AuditCheckpoint.root.is_not(None),
            )
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
        ).first()
        if cp is None:
            raise ProofError(
                "no signed checkpoint with a Merkle root covers this event yet: retry after the "
                "next checkpoint (BASTION_AUDIT_CHECKPOINT_INTERVAL_S)"
            )
        seal = session.scalars(
            select(AuditCheckpoint)
            .where(
                AuditCheckpoint.stream == row.stream,
                AuditCheckpoint.kind == "seal",
                AuditCheckpoint.seq < row.seq,
            )
            .order_by(AuditCheckpoint.seq.desc())
            .limit(1)
        ).first()
        base = Frontier.load(seal.frontier) if seal is not None else Frontier()
        hashes = list(
            session.scalars(
                select(AuditEvent.hash)
                .where(
                    AuditEvent.stream == row.stream,
                    AuditEvent.seq > base.size,
                    AuditEvent.seq <= cp.seq,
                )
                .order_by(AuditEvent.seq)
            )
        )
        view = EventView.of(row)
        signed = SignedCheckpoint(
            stream=cp.stream,
            seq=cp.seq,
            hash=cp.hash,
            ts_us=cp.ts_us,
            key_id=cp.key_id,
            signature=cp.signature,
            root=cp.root,
            chain=chain or "sha256",
            kind=cp.kind,
        )
    if base.size + len(hashes) != cp.seq:
        raise ProofError("rows the checkpoint covers are missing: run `bastion audit verify`")
    path, root = inclusion_proof(row.seq - 1, hashes, base)
    if root != cp.root:
        raise ProofError("the stored rows do not match the signed root: run `bastion audit verify`")
    return {
        "format": "bastion-inclusion-proof/1",
        "event": view.to_dict(),
        "leaf_index": row.seq - 1,
        "tree_size": cp.seq,
        "proof": path,
        "checkpoint": signed.to_dict(),
    }


def check_proof(bundle: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> str | None:
    """None when the bundle proves its event; else what is wrong."""
    try:
        data = dict(bundle["checkpoint"])
        data.pop("format", None)
        cp = SignedCheckpoint(**data)
        event = bundle["event"]
        index, size, path = int(bundle["leaf_index"]), int(bundle["tree_size"]), bundle["proof"]
        row_hash, stream, seq = str(event["hash"]), str(event["stream"]), int(event["seq"])
    except (KeyError, TypeError, ValueError):
        return "the file is not an inclusion proof written by `bastion audit prove`"
    signed = cp.verifies(trusted)
    if signed is None:
        return f"the checkpoint is signed by key {cp.key_id}, which is not trusted"
    if not signed:
        return "the checkpoint's signature does not verify: the proof was altered"
    if cp.root is None or cp.stream != stream or cp.seq != size or index != seq - 1:
        return "the proof's event, tree size and checkpoint do not belong together"
    if not verify_inclusion(index, size, row_hash, path, cp.root):
        return "the audit path does not lead to the signed root: the event is not in the ledger"
    return None
