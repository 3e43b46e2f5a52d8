"""A Merkle tree over each stream, as Certificate Transparency builds one (RFC 6962 §2.1).

The leaves of a stream's tree are its rows' hashes in seq order: leaf ``i`` (from 0) is
row ``seq = i + 1``. ``leaf = sha256(0x00 || row_hash)``, ``node = sha256(0x01 || left
|| right)``, the tree of ``n`` leaves split at the largest power of two below ``n``.
Every signed checkpoint carries the root of the tree of its stream's first ``seq``
rows, so one event can be proven part of the ledger with a path of ``log2(n)`` hashes
(:func:`inclusion_proof`), checkable against the signed root alone
(:func:`verify_inclusion`, RFC 9162 §2.1.3.2) without the rest of the log.

The writer keeps the *frontier* (the roots of the perfect subtrees covering the leaves
so far, largest first), so each append costs a leaf hash and, amortised, one node
hash. A retention seal stores the frontier of the rows it removes; proofs for the rows
that remain are computed from it and the remaining leaves.

Written here rather than taken from a library: the maintained Python CT libraries
target X.509 logs, and the tree itself is forty lines of the RFC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def leaf_hash(row_hash: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(row_hash)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """Roots of the perfect subtrees over the leaves so far, largest first."""

    def __init__(self, nodes: Sequence[tuple[int, bytes]] = ()) -> None:
        self.nodes: list[tuple[int, bytes]] = list(nodes)

    @property
    def size(self) -> int:
        return sum(n for n, _ in self.nodes)

    def append(self, row_hash: str) -> None:
        nodes = self.nodes
        nodes.append((1, leaf_hash(row_hash)))
        while len(nodes) >= 2 and nodes[-1][0] == nodes[-2][0]:
            right = nodes.pop()
            left = nodes.pop()
            nodes.append((left[0] * 2, node_hash(left[1], right[1])))

    def extend(self, row_hashes: Iterable[str]) -> None:
        for row_hash in row_hashes:
            self.append(row_hash)

    def root(self) -> str:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1][1]
        for _, left in reversed(self.nodes[:-1]):
            acc = node_hash(left, acc)
        return acc.hex()

    def copy(self) -> Frontier:
        return Frontier(self.nodes)

    def dump(self) -> str:
        return ",".join(f"{n}:{h.hex()}" for n, h in self.nodes)

    @classmethod
    def load(cls, text: str | None) -> Frontier:
        if not text:
            return cls()
        nodes = []
        for part in text.split(","):
            n, h = part.split(":")
            nodes.append((int(n), bytes.fromhex(h)))
        return cls(nodes)


class _Tree:
    """A tree whose first leaves are known only through a frontier (a retention seal)."""

    def __init__(self, base: Frontier, leaves: Sequence[bytes]) -> None:
        self.known: dict[tuple[int, int], bytes] = {}
        lo = 0
        for n, h in base.nodes:
            self.known[(lo, lo + n)] = h
            lo += n
        self.offset = lo
        self.leaves = leaves

    def mth(self, lo: int, hi: int) -> bytes:
        found = self.known.get((lo, hi))
        if found is not None:
            return found
        if hi - lo == 1:
            if lo < self.offset:
                raise ValueError("this part of the tree was removed by retention")
            return self.leaves[lo - self.offset]
        k = _split(hi - lo)
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """RFC 6962 PATH(m, D[lo:hi]), ``m`` relative to ``lo``."""
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]


def inclusion_proof(
    index: int, row_hashes: Sequence[str], base: Frontier | None = None
) -> tuple[list[str], str]:
    """The audit path of leaf ``index`` (0-based) and the root, for a tree whose leaves
    are ``base`` (the frontier of removed rows, if any) followed by ``row_hashes``."""
    base = base or Frontier()
    tree = _Tree(base, [leaf_hash(h) for h in row_hashes])
    size = base.size + len(row_hashes)
    if not base.size <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} (from {base.size})")
    return [h.hex() for h in tree.path(index, 0, size)], tree.mth(0, size).hex()


def root_of(row_hashes: Sequence[str], base: Frontier | None = None) -> str:
    frontier = base.copy() if base is not None else Frontier()
    frontier.extend(row_hashes)
    return frontier.root()


def verify_inclusion(index: int, size: int, row_hash: str, proof: Sequence[str], root: str) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` lead from the row's leaf to ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(row_hash)
    try:
        path = [bytes.fromhex(p) for p in proof]
    except ValueError:
        return False
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r.hex() == root
