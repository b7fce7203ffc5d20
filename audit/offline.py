"""Offline checks of saved transparency-log files, trusting only the log's public key: a
checkpoint's signature, that a newer checkpoint extends it, that an entry is in the newest
one, and that a full copy of the entries rebuilds exactly its root (any rewritten entry
changes the root). Every file given is checked against the newest checkpoint or refused:
it fails closed with one error type, :class:`VerificationFailed`.

File formats (as ``sealmark audit tlog …`` writes them): checkpoints are C2SP signed notes;
proofs are JSON with base64 hashes; entries are JSON lines ``{"index": i, "data": base64}``."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from audit.domain import unit_commitment
from sealmark.errors import InvalidArgument
from sealmark.gs1.code import GS1Code
from sealmark.tlog import merkle
from sealmark.tlog.note import (
    Checkpoint,
    NoteError,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
)


class VerificationFailed(Exception):
    """A file does not verify; the message says which and why."""


def _checkpoint(path: Path, key: str) -> Checkpoint:
    try:
        verifier = parse_verifier_key(key)
        body = open_note(path.read_text(encoding="utf-8"), [verifier])
        return parse_checkpoint(body)
    except (NoteError, ValueError, OSError) as exc:
        raise VerificationFailed(f"{path}: {exc}") from exc


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VerificationFailed(f"{path}: not a proof file ({exc})") from exc
    if not isinstance(data, dict):
        raise VerificationFailed(f"{path}: not a proof file")
    return data


def _hashes(data: dict[str, Any], path: Path) -> list[bytes]:
    try:
        return [base64.b64decode(h, validate=True) for h in data["hashes"]]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise VerificationFailed(f"{path}: bad hashes ({exc})") from exc


def verify_files(
    key: str,
    checkpoint: Path,
    *,
    newer: Path | None = None,
    consistency: Path | None = None,
    inclusion: Path | None = None,
    entries: Path | None = None,
    code: str | None = None,
    today: date | None = None,
) -> list[str]:
    """What was verified, one line each. Raises VerificationFailed if anything fails, or if a
    file is given that cannot be checked (fail closed); its message has one line per failure.

    The newest checkpoint (``newer`` when given, with the ``consistency`` proof that it
    extends ``checkpoint``; else ``checkpoint``) is what everything is checked against: the
    inclusion proof must be for its tree size, and ``entries`` must be exactly its entries,
    0 to size - 1, rebuilding its root and, from their prefix, the older one's. A checkpoint
    whose signature fails stops everything; past that every file is checked, so that a
    rewritten entry is named as closely as the trusted hashes allow (the signed roots, and
    the nodes of the proofs that verified, are hashes of known ranges of entries)."""
    if (newer is None) != (consistency is None):
        raise VerificationFailed("--newer and --consistency go together: the proof links them")
    if code is not None and inclusion is None:
        raise VerificationFailed("--code needs --inclusion: the proof of that code")
    old = _checkpoint(checkpoint, key)
    newest, newest_path = old, checkpoint
    done = [f"checkpoint {old.origin} size {old.size} signed by the key"]
    trusted = [_Known(0, old.size, old.root_hash, f"{checkpoint}")]
    failed: list[str] = []
    if newer is not None and consistency is not None:
        newest, newest_path = _checkpoint(newer, key), newer
        if newest.origin != old.origin:
            raise VerificationFailed(f"{newer}: another log ({newest.origin} != {old.origin})")
        trusted.append(_Known(0, newest.size, newest.root_hash, f"{newer}"))
        try:
            trusted += _extends(old, newest, checkpoint, newer, consistency)
            done.append(f"size {newest.size} extends size {old.size} (append-only)")
        except VerificationFailed as exc:
            failed.append(str(exc))
    if inclusion is not None:
        try:
            known, lines = _included(inclusion, newest, newest_path, code, today)
            trusted += known
            done += lines
        except VerificationFailed as exc:
            failed.append(str(exc))
    if entries is not None:
        try:
            _rebuild(entries, trusted, newest, newest_path)
            done.append(f"entries 0..{newest.size - 1} rebuild the newest checkpoint's root")
        except VerificationFailed as exc:
            failed.append(str(exc))
    if failed:
        raise VerificationFailed("\n".join(failed))
    return done


def _included(
    path: Path, newest: Checkpoint, newest_path: Path, code: str | None, today: date | None
) -> tuple[list[_Known], list[str]]:
    """Check the inclusion proof against the newest checkpoint; return the hashes it vouches
    for (the entry's leaf and the path's nodes) and what was verified."""
    proof = _json(path)
    try:
        entry = base64.b64decode(proof["entry"], validate=True)
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise VerificationFailed(f"{path}: not an inclusion proof ({exc})") from exc
    if size != newest.size:
        raise VerificationFailed(
            f"{path}: proof of entry {index} for tree size {size}, but the newest checkpoint"
            f" ({newest_path}) has size {newest.size}: save the proof with"
            f" `tlog prove --at {newest_path}`"
        )
    hashes, leaf = _hashes(proof, path), merkle.leaf_hash(entry)
    try:
        merkle.verify_inclusion(leaf, index, size, hashes, newest.root_hash)
    except merkle.ProofError as exc:
        raise VerificationFailed(
            f"{path}: entry {index} is not in the checkpoint of size {size} ({newest_path}):"
            f" {exc}; the entry or the proof was rewritten"
        ) from exc
    ranges = [(index, index + 1), *merkle.inclusion_proof_ranges(index, size)]
    nodes = zip(ranges, [leaf, *hashes], strict=True)
    lines = [f"entry {index} is in the tree of size {size}"]
    if "code" in proof or code is not None:
        lines.append(_code_in_batch(proof, entry, path, code, today))
    return [_Known(lo, hi, h, str(path)) for (lo, hi), h in nodes], lines


def _rebuild(path: Path, trusted: list[_Known], newest: Checkpoint, newest_path: Path) -> None:
    """Check that the entries are exactly the newest checkpoint's and hash to every trusted
    hash; else name the narrowest range of entries the trusted hashes say was changed."""
    leaves = _entry_leaves(path)
    if len(leaves) != newest.size:
        raise VerificationFailed(_count_mismatch(path, len(leaves), newest, newest_path))
    good = [k for k in trusted if merkle.root(leaves[k.lo : k.hi]) == k.hash]
    bad = [k for k in trusted if k not in good]
    if not bad:
        return
    worst = min(bad, key=lambda k: k.hi - k.lo)
    lo, hi = worst.lo, worst.hi
    narrowed = True
    while narrowed:  # the ranges inside it that check out at either end are not the culprit
        narrowed = False
        for k in good:
            if k.lo == lo and lo < k.hi < hi:
                lo, narrowed = k.hi, True
            elif k.hi == hi and lo < k.lo < hi:
                hi, narrowed = k.lo, True
    where = f"entry {lo} was" if hi - lo == 1 else f"one of entries {lo}..{hi - 1} was"
    raise VerificationFailed(
        f"{path}: {where} rewritten, dropped or reordered (the entries do not hash to what"
        f" {worst.source} commits to for {_span(worst.lo, worst.hi)})"
    )


@dataclass(frozen=True)
class _Known:
    """A trusted hash of entries [lo, hi): a signed root, or a node of a verified proof."""

    lo: int
    hi: int
    hash: bytes
    source: str


def _extends(
    old: Checkpoint, new: Checkpoint, older: Path, newer: Path, consistency: Path
) -> list[_Known]:
    """Check that ``new`` extends ``old``; return the hashes the verified proof vouches for."""
    proof = _json(consistency)
    sizes = (proof.get("first_size"), proof.get("second_size"))
    if sizes != (old.size, new.size):
        raise VerificationFailed(
            f"{consistency}: proves sizes {sizes[0]} -> {sizes[1]}, the checkpoints are"
            f" {old.size} -> {new.size}: save it with `tlog consistency --from {older}"
            f" --at {newer}`"
        )
    hashes = _hashes(proof, consistency)
    try:
        merkle.verify_consistency(old.size, new.size, hashes, old.root_hash, new.root_hash)
    except merkle.ProofError as exc:
        raise VerificationFailed(f"{newer} does not extend {older}: {exc}") from exc
    nodes = zip(merkle.consistency_proof_ranges(old.size, new.size), hashes, strict=True)
    return [_Known(lo, hi, h, str(consistency)) for (lo, hi), h in nodes]


def _count_mismatch(path: Path, count: int, newest: Checkpoint, newest_path: Path) -> str:
    if count < newest.size:
        return (
            f"{path}: {count} entries, the newest checkpoint ({newest_path}) has"
            f" {newest.size}: {_span(count, newest.size)} missing"
        )
    return (
        f"{path}: {_span(newest.size, count)} past the newest checkpoint ({newest_path},"
        f" size {newest.size}): nothing signed covers them; give the checkpoint that does"
        f" (--newer) or save the entries with `tlog entries --at {newest_path}`"
    )


def _span(lo: int, hi: int) -> str:
    return f"entry {lo}" if hi - lo == 1 else f"entries {lo}..{hi - 1}"


def _code_in_batch(
    proof: dict[str, Any], entry: bytes, path: Path, payload: str | None, today: date | None
) -> str:
    """The code's commitment is in the batch root the entry commits to; with ``payload`` (the
    code as scanned), the commitment is that code's."""
    inner = proof.get("code")
    if not isinstance(inner, dict):
        raise VerificationFailed(f"{path}: not the proof of a code (save it with prove --code)")
    try:
        batch = json.loads(entry)
        root = bytes.fromhex(batch["root"])
        commitment = base64.b64decode(inner["commitment"], validate=True)
        position, size = int(inner["position"]), int(inner["batch_size"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise VerificationFailed(f"{path}: not the proof of a code ({exc})") from exc
    if batch.get("type") != "batch_commitment":
        raise VerificationFailed(f"{path}: the entry is not an issuance batch")
    try:
        merkle.verify_inclusion(commitment, position, size, _hashes(inner, path), root)
    except merkle.ProofError as exc:
        raise VerificationFailed(f"the code is not in the batch: {exc}") from exc
    if payload is None:
        return f"commitment {commitment.hex()[:16]}… is unit {position} of the batch"
    try:
        scanned = GS1Code.from_scan(payload, today=today or date.today(), field="--code")
    except InvalidArgument as exc:
        raise VerificationFailed(f"--code: {exc}") from exc
    if scanned.signature is None:
        raise VerificationFailed("--code: the payload carries no signature (AI 8030)")
    mine = unit_commitment(scanned.gtin + scanned.serial, scanned.signature)
    if mine != commitment:
        raise VerificationFailed("the proof is for another code than the one scanned")
    return f"the scanned code was issued in the logged batch (unit {position} of {size})"


def _entry_leaves(path: Path) -> list[bytes]:
    leaves: list[bytes] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise VerificationFailed(f"{path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            index, data = int(row["index"]), base64.b64decode(row["data"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise VerificationFailed(f"{path}:{number}: not an entry ({exc})") from exc
        if index != len(leaves):
            raise VerificationFailed(f"{path}:{number}: entry {index}, expected {len(leaves)}")
        leaves.append(merkle.leaf_hash(data))
    return leaves
