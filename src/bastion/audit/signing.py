"""Signed checkpoints: "stream S had reached seq N, whose hash was H, at time T".

Ed25519 (``cryptography``). An auditor who holds the public key can confirm that the
log only grew: rewriting any row up to a checkpoint changes the hash it vouches for,
and deleting the tail leaves a checkpoint pointing past the end.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.files import create_private_file


def checkpoint_message(
    stream: str,
    seq: int,
    hash_: str,
    ts_us: int,
    *,
    root: str | None = None,
    chain: str = "sha256",
    kind: str = "checkpoint",
) -> bytes:
    """What a checkpoint's signature covers. ``v1`` (no Merkle root) is what ledgers
    written before anchoring hold; ``v2`` also covers the stream's chain format (so a
    keyed stream cannot be passed off as an unkeyed one), the checkpoint's kind (a
    retention ``seal`` is the only kind that lets the rows before it go) and the root of
    the stream's Merkle tree."""
    if root is None:
        return f"bastion-checkpoint:v1:{stream}:{seq}:{hash_}:{ts_us}".encode()
    return f"bastion-checkpoint:v2:{chain}:{kind}:{stream}:{seq}:{hash_}:{root}:{ts_us}".encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(
        self,
        stream: str,
        seq: int,
        hash_: str,
        ts_us: int,
        *,
        root: str | None = None,
        chain: str = "sha256",
        kind: str = "checkpoint",
    ) -> str:
        message = checkpoint_message(stream, seq, hash_, ts_us, root=root, chain=chain, kind=kind)
        return base64.b64encode(self.private.sign(message)).decode()

    def public_pem(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


def verify_signature(
    public: Ed25519PublicKey,
    stream: str,
    seq: int,
    hash_: str,
    ts_us: int,
    signature: str,
    *,
    root: str | None = None,
    chain: str = "sha256",
    kind: str = "checkpoint",
) -> bool:
    message = checkpoint_message(stream, seq, hash_, ts_us, root=root, chain=chain, kind=kind)
    try:
        public.verify(base64.b64decode(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_or_create_signer(path: Path) -> Signer:
    """The signing key at ``path``, created (mode 0600) if it does not exist."""
    if path.exists():
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return Signer(private)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    if not create_private_file(path, pem):
        return load_or_create_signer(path)  # another process won the race: use its key
    return Signer(private)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    public = serialization.load_pem_public_key(pem)
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return public
