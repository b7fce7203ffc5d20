"""Offline checks of saved transparency-log files, trusting only the log's public key: a
checkpoint's signature, that a newer checkpoint extends it, that an entry is in it, and that a
full copy of the entries rebuilds exactly its root (any rewritten entry changes the root).

File formats (as ``sealmark audit tlog …`` writes them): checkpoints are C2SP signed notes;
proofs are JSON with base64 hashes; entries are JSON lines ``{"index": i, "data": base64}``."""

from __future__ import annotations

import base64
import binascii
import json
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
    """What was verified, one line each. Raises VerificationFailed on the first failure."""
    old = _checkpoint(checkpoint, key)
    done = [f"checkpoint {old.origin} size {old.size} signed by the key"]
    if newer is not None and consistency is not None:
        new = _checkpoint(newer, key)
        if new.origin != old.origin:
            raise VerificationFailed(f"{newer}: another log ({new.origin} != {old.origin})")
        proof = _json(consistency)
        if (proof.get("first_size"), proof.get("second_size")) != (old.size, new.size):
            raise VerificationFailed(f"{consistency}: proves other sizes than the checkpoints")
        try:
            merkle.verify_consistency(
                old.size, new.size, _hashes(proof, consistency), old.root_hash, new.root_hash
            )
        except merkle.ProofError as exc:
            raise VerificationFailed(f"{newer} does not extend {checkpoint}: {exc}") from exc
        done.append(f"size {new.size} extends size {old.size} (append-only)")
    if inclusion is not None:
        proof = _json(inclusion)
        try:
            entry = base64.b64decode(proof["entry"], validate=True)
            index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise VerificationFailed(f"{inclusion}: not an inclusion proof ({exc})") from exc
        if size != old.size:
            raise VerificationFailed(f"{inclusion}: proof for size {size}, checkpoint {old.size}")
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(entry), index, size, _hashes(proof, inclusion), old.root_hash
            )
        except merkle.ProofError as exc:
            raise VerificationFailed(f"entry {index} is not in the checkpoint: {exc}") from exc
        done.append(f"entry {index} is in the tree of size {size}")
        if "code" in proof or code is not None:
            done.append(_code_in_batch(proof, entry, inclusion, code, today))
    if entries is not None:
        leaves = _entry_leaves(entries)
        if len(leaves) < old.size:
            raise VerificationFailed(f"{entries}: {len(leaves)} entries, checkpoint has {old.size}")
        if merkle.root(leaves[: old.size]) != old.root_hash:
            raise VerificationFailed(
                f"{entries}: the entries do not hash to the checkpoint's root:"
                " a stored entry was rewritten, dropped or reordered"
            )
        done.append(f"entries 0..{old.size - 1} rebuild the checkpoint's root")
    return done


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
