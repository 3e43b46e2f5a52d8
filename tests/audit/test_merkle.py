"""The Merkle tree (RFC 6962): proofs verify, survive a retention seal, and catch lies."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from bastion.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_inclusion,
)


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def hashes(n: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]


@given(st.integers(min_value=0, max_value=300))
def test_the_frontier_root_is_the_rfc_root(n: int) -> None:
    rows = hashes(n)
    expected = reference_root([leaf_hash(h) for h in rows]).hex()
    assert root_of(rows) == expected
    assert (n == 0) == (expected == EMPTY_ROOT)


@given(st.data())
def test_every_leaf_has_a_proof_and_a_seal_changes_nothing(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=200))
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    sealed = data.draw(st.integers(min_value=0, max_value=index))
    rows = hashes(n)
    proof, root = inclusion_proof(index, rows)
    assert root == root_of(rows)
    assert verify_inclusion(index, n, rows[index], proof, root)
    # The rows before a retention seal are gone; their frontier stands in for them.
    base = Frontier()
    base.extend(rows[:sealed])
    base = Frontier.load(base.dump())
    assert inclusion_proof(index, rows[sealed:], base) == (proof, root)


@given(st.data())
def test_a_wrong_leaf_index_size_or_path_is_refused(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=2, max_value=120))
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    rows = hashes(n)
    proof, root = inclusion_proof(index, rows)
    other = (index + data.draw(st.integers(min_value=1, max_value=n - 1))) % n
    assert not verify_inclusion(index, n, rows[other], proof, root)
    assert not verify_inclusion(other, n, rows[index], proof, root) or proof == []
    if proof:
        bad = list(proof)
        bad[data.draw(st.integers(min_value=0, max_value=len(bad) - 1))] = "00" * 32
        assert not verify_inclusion(index, n, rows[index], bad, root)
        assert not verify_inclusion(index, n, rows[index], proof[:-1], root)
