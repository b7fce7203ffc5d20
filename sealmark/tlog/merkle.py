"""RFC 9162 §2.1 Merkle tree hashing, proof generation and proof verification (SHA-256).

Leaves are given as their leaf hashes (:func:`leaf_hash` of the entry), in log order. Proof
generation is for the log (it holds every leaf hash) and raises ``ValueError`` on arguments out
of range; verification is for clients and fails closed with exactly one error type::

    ValueError
     └── ProofError    the proof, the sizes or a hash do not check out

The verifiers accept exactly what transparency-dev/merkle's ``proof`` package accepts, with
one deliberate difference: every hash (leaf, roots, proof nodes) must be 32 bytes, even where
the reference merely compares two roots (equal tree sizes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """An inclusion or consistency proof did not verify; the message says why."""


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 ‖ entry): the hash of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``leaf_hashes`` (:data:`EMPTY_ROOT` for none). O(n) time,
    O(log n) memory. Raises ValueError if a leaf hash is not 32 bytes."""
    if not leaf_hashes:
        return EMPTY_ROOT
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path (RFC 9162 §2.1.3.1) of leaf ``index`` in the tree of ``leaf_hashes``,
    leaf level first. O(n). Raises ValueError unless 0 <= index < len(leaf_hashes)."""
    size = len(leaf_hashes)
    if not 0 <= index < size:
        raise ValueError(f"inclusion_proof: index {index}, want 0..{size - 1} (tree size {size})")
    # Walk down from the root; each step keeps the half holding the leaf and records the root
    # of the other half. The path lists those siblings bottom-up, so reverse at the end.
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            path.append(_subtree_root(leaf_hashes, mid, hi))
            hi = mid
        else:
            path.append(_subtree_root(leaf_hashes, lo, mid))
            lo = mid
    path.reverse()
    return path


def consistency_proof(first_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof (RFC 9162 §2.1.4.1) from the tree of the first ``first_size``
    leaves to the tree of all ``leaf_hashes``; empty when the sizes are equal. O(n).
    Raises ValueError unless 1 <= first_size <= len(leaf_hashes): RFC 9162 defines no proof
    from the empty tree, and the verifiers reject one."""
    size = len(leaf_hashes)
    if not 1 <= first_size <= size:
        raise ValueError(
            f"consistency_proof: first_size {first_size}, want 1..{size} (tree size {size})"
        )
    # Iterative SUBPROOF(m, D[lo:hi], b): the outermost node is found first, so reverse.
    proof: list[bytes] = []
    lo, hi = 0, size
    complete = True  # RFC's b: the current subtree is the whole old tree, known to the client
    while hi != first_size:
        mid = lo + _split(hi - lo)
        if first_size <= mid:
            proof.append(_subtree_root(leaf_hashes, mid, hi))
            hi = mid
        else:
            proof.append(_subtree_root(leaf_hashes, lo, mid))
            lo = mid
            complete = False
    if not complete:
        proof.append(_subtree_root(leaf_hashes, lo, hi))
    proof.reverse()
    return proof


def inclusion_proof_ranges(index: int, tree_size: int) -> list[tuple[int, int]]:
    """The leaves ``[lo, hi)`` whose subtree hash each node of :func:`inclusion_proof`
    (``index``, a tree of ``tree_size``) is, in the same order. Once a proof has verified, each
    node is a trusted hash of its range: a verifier uses them to say where a copy of the
    entries differs. Raises ValueError unless 0 <= index < tree_size."""
    if not 0 <= index < tree_size:
        raise ValueError(f"inclusion_proof_ranges: index {index}, tree size {tree_size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def consistency_proof_ranges(first_size: int, tree_size: int) -> list[tuple[int, int]]:
    """The leaves ``[lo, hi)`` whose subtree hash each node of :func:`consistency_proof`
    (``first_size`` to ``tree_size``) is, in the same order (see
    :func:`inclusion_proof_ranges`). Raises ValueError unless 1 <= first_size <= tree_size."""
    if not 1 <= first_size <= tree_size:
        raise ValueError(f"consistency_proof_ranges: sizes {first_size} -> {tree_size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, tree_size
    complete = True
    while hi != first_size:
        mid = lo + _split(hi - lo)
        if first_size <= mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
            complete = False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` leaves whose
    hash is ``root`` (RFC 9162 §2.1.3.2). Returns None; raises ProofError otherwise."""
    where = "inclusion proof"
    if index < 0 or tree_size < 0:
        raise ProofError(f"{where}: negative index {index} or tree size {tree_size}")
    if index >= tree_size:
        raise ProofError(f"{where}: index {index} >= tree size {tree_size}")
    _check_hash(where, "leaf hash", leaf_hash)
    _check_hash(where, "root", root)
    _check_path(where, proof)
    inner = (index ^ (tree_size - 1)).bit_length()
    want = inner + (index >> inner).bit_count()
    if len(proof) != want:
        raise ProofError(
            f"{where}: {len(proof)} hashes, want {want} for index {index} in tree size {tree_size}"
        )
    fn, sn, calculated = index, tree_size - 1, leaf_hash
    for node in proof:
        if sn == 0:
            raise ProofError(f"{where}: proof too long")
        if fn & 1 or fn == sn:
            calculated = node_hash(node, calculated)
            # Past the right border, climb the levels where this subtree has no right sibling.
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            calculated = node_hash(calculated, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"{where}: proof too short")
    if calculated != root:
        raise ProofError(f"{where}: root mismatch")


def verify_consistency(
    first_size: int,
    second_size: int,
    proof: Sequence[bytes],
    first_root: bytes,
    second_root: bytes,
) -> None:
    """Check that the tree of ``second_size`` leaves with hash ``second_root`` extends the tree
    of ``first_size`` leaves with hash ``first_root`` (RFC 9162 §2.1.4.2). Requires
    0 < first_size <= second_size; equal sizes need an empty proof and equal roots. Returns
    None; raises ProofError otherwise."""
    where = "consistency proof"
    if first_size < 0 or second_size < 0:
        raise ProofError(f"{where}: negative size {first_size} or {second_size}")
    if first_size > second_size:
        raise ProofError(f"{where}: first size {first_size} > second size {second_size}")
    if first_size == 0:
        # Every tree extends the empty tree; a "proof" of it proves nothing, so refuse it
        # rather than let a caller believe something was checked.
        raise ProofError(f"{where}: first size is 0; consistency with the empty tree is vacuous")
    _check_hash(where, "first root", first_root)
    _check_hash(where, "second root", second_root)
    _check_path(where, proof)
    if first_size == second_size:
        if proof:
            raise ProofError(f"{where}: sizes are equal ({first_size}) but the proof is not empty")
        if first_root != second_root:
            raise ProofError(f"{where}: root mismatch (equal sizes, different roots)")
        return
    shift = (first_size & -first_size).bit_length() - 1  # levels of the old tree's last subtree
    perfect = first_size == 1 << shift  # then the client already holds that subtree's root
    inner = ((first_size - 1) ^ (second_size - 1)).bit_length()
    want = (0 if perfect else 1) + inner - shift + ((first_size - 1) >> inner).bit_count()
    if len(proof) != want:
        raise ProofError(
            f"{where}: {len(proof)} hashes, want {want} for sizes {first_size} -> {second_size}"
        )
    path = [first_root, *proof] if perfect else list(proof)
    fn, sn = (first_size - 1) >> shift, (second_size - 1) >> shift
    first_calc = second_calc = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofError(f"{where}: proof too long")
        if fn & 1 or fn == sn:
            first_calc = node_hash(node, first_calc)
            second_calc = node_hash(node, second_calc)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            second_calc = node_hash(second_calc, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"{where}: proof too short")
    if first_calc != first_root:
        raise ProofError(f"{where}: root mismatch (first tree, size {first_size})")
    if second_calc != second_root:
        raise ProofError(f"{where}: root mismatch (second tree, size {second_size})")


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """Merkle tree hash of ``leaf_hashes[lo:hi]`` (lo < hi), with a stack of perfect subtrees.

    After leaf number ``count`` (1-based) the stack holds one root per set bit of ``count``;
    each trailing zero bit of ``count`` is a merge. Folding the stack right to left at the end
    gives RFC 9162's shape, where the left subtree is always the largest power of two."""
    stack: list[bytes] = []
    for count, node in enumerate(leaf_hashes[lo:hi], 1):
        if len(node) != HASH_SIZE:
            at = lo + count - 1
            raise ValueError(f"leaf_hashes[{at}] is {len(node)} bytes, want {HASH_SIZE}")
        while not count & 1:
            node = node_hash(stack.pop(), node)
            count >>= 1
        stack.append(node)
    node = stack.pop()
    while stack:
        node = node_hash(stack.pop(), node)
    return node


def _check_hash(where: str, what: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise ProofError(f"{where}: {what} is {got}, want {HASH_SIZE} bytes")


def _check_path(where: str, proof: Sequence[bytes]) -> None:
    for i, node in enumerate(proof):
        _check_hash(where, f"proof[{i}]", node)
