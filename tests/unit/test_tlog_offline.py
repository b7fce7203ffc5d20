"""`sealmark audit tlog verify` without a server: saved checkpoints, proofs and entries of a
log of 7 entries (older checkpoint at size 3, newer at 7), in the files the CLI writes.

The named vector of issue 28: the documented form (older checkpoint, newer checkpoint,
consistency, inclusion, entries) refused honest files and passed a copy with entry 3 rewritten,
because entries past the older checkpoint were never checked against the newer one. Here every
entry position is rewritten in turn, before, at and after the older checkpoint's size, as a
log that kept its leaf hashes (proofs honest, entry bytes rewritten) and as one that rebuilt
its tree from the rewritten entries (proofs that no longer reach the signed roots)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.offline import VerificationFailed, verify_files
from sealmark.tlog import merkle
from sealmark.tlog.note import Checkpoint, NoteSigner

ORIGIN = "sealmark.test/log/t1"
OLD, NEW = 3, 7
SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
KEY = SIGNER.verifier_key()
HONEST = [json.dumps({"type": "status_change", "n": i}).encode() for i in range(NEW)]
SPAN = re.compile(r"(?:entry (\d+)|one of entries (\d+)\.\.(\d+)) was rewritten")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Saved:
    """The files an auditor saved with the CLI, from a log serving ``served`` entries whose
    tree is built from ``tree`` (the honest entries, or the rewritten ones if it rebuilt)."""

    def __init__(self, root: Path, served: list[bytes], tree: list[bytes]) -> None:
        leaves = [merkle.leaf_hash(e) for e in tree]
        self.dir = root
        self.cp1 = self._checkpoint("cp1.note", HONEST[:OLD])
        self.cp2 = self._checkpoint("cp2.note", HONEST)
        self.consistency = self._write(
            "c.json",
            {
                "first_size": OLD,
                "second_size": NEW,
                "hashes": [_b64(h) for h in merkle.consistency_proof(OLD, leaves)],
            },
        )
        self.entries = root / "entries.jsonl"
        self.entries.write_text(
            "".join(json.dumps({"index": i, "data": _b64(e)}) + "\n" for i, e in enumerate(served))
        )
        self._served, self._leaves = served, leaves

    def _checkpoint(self, name: str, entries: list[bytes]) -> Path:
        root = merkle.root([merkle.leaf_hash(e) for e in entries])
        path = self.dir / name
        path.write_text(SIGNER.sign(Checkpoint(ORIGIN, len(entries), root).body()))
        return path

    def _write(self, name: str, data: object) -> Path:
        path = self.dir / name
        path.write_text(json.dumps(data))
        return path

    def inclusion(self, index: int, size: int = NEW) -> Path:
        return self._write(
            f"p{index}-{size}.json",
            {
                "leaf_index": index,
                "tree_size": size,
                "entry": _b64(self._served[index]),
                "hashes": [_b64(h) for h in merkle.inclusion_proof(index, self._leaves[:size])],
            },
        )

    def documented(self, index: int) -> list[str]:
        """The form docs/audit.md shows, with the inclusion proof of entry ``index``."""
        return verify_files(
            KEY,
            self.cp1,
            newer=self.cp2,
            consistency=self.consistency,
            inclusion=self.inclusion(index),
            entries=self.entries,
        )


def _rewritten(position: int) -> list[bytes]:
    return [b'{"type":"recall"}' if i == position else e for i, e in enumerate(HONEST)]


def _named(message: str) -> range:
    """The entries a failure message says were rewritten."""
    found = SPAN.search(message)
    assert found is not None, message
    single, lo, hi = found.groups()
    return range(int(single), int(single) + 1) if single else range(int(lo), int(hi) + 1)


def test_honest_files_pass_in_the_documented_form(tmp_path: Path) -> None:
    saved = Saved(tmp_path, HONEST, HONEST)
    for index in range(NEW):
        assert saved.documented(index) == [
            f"checkpoint {ORIGIN} size {OLD} signed by the key",
            f"size {NEW} extends size {OLD} (append-only)",
            f"entry {index} is in the tree of size {NEW}",
            f"entries 0..{NEW - 1} rebuild the newest checkpoint's root",
        ]
    one = verify_files(KEY, saved.cp2, inclusion=saved.inclusion(5), entries=saved.entries)
    assert one[-1] == f"entries 0..{NEW - 1} rebuild the newest checkpoint's root"


def test_issue_28_entry_3_rewritten_past_the_older_checkpoint_is_caught(tmp_path: Path) -> None:
    saved = Saved(tmp_path, _rewritten(3), HONEST)
    with pytest.raises(VerificationFailed, match="entry 3 is not in the checkpoint of size 7"):
        saved.documented(3)
    with pytest.raises(VerificationFailed, match=r"entries.jsonl: entry 3 was rewritten"):
        saved.documented(0)


@pytest.mark.parametrize("position", range(NEW))
@pytest.mark.parametrize("rebuilt", [False, True], ids=["leaf-hashes-kept", "tree-rebuilt"])
def test_every_rewritten_position_fails_naming_the_entry(
    tmp_path: Path, position: int, rebuilt: bool
) -> None:
    served = _rewritten(position)
    saved = Saved(tmp_path, served, served if rebuilt else HONEST)
    calls: list[Callable[[], object]] = [
        lambda: verify_files(KEY, saved.cp2, entries=saved.entries),
        lambda: verify_files(
            KEY, saved.cp1, newer=saved.cp2, consistency=saved.consistency, entries=saved.entries
        ),
    ]
    calls += [partial(saved.documented, i) for i in range(NEW) if i != position]
    for call in calls:
        with pytest.raises(VerificationFailed) as caught:
            call()
        assert position in _named(str(caught.value)), caught.value
    with pytest.raises(VerificationFailed) as caught:
        saved.documented(position)
    assert f"entry {position}" in str(caught.value)


def test_the_consistency_proof_names_the_single_rewritten_entry(tmp_path: Path) -> None:
    # From size 3 to 7 the proof holds the hashes of entries 2 and 3 alone.
    for position in (2, 3):
        saved = Saved(tmp_path, _rewritten(position), HONEST)
        with pytest.raises(VerificationFailed, match=rf"entry {position} was rewritten"):
            verify_files(
                KEY,
                saved.cp1,
                newer=saved.cp2,
                consistency=saved.consistency,
                entries=saved.entries,
            )


def test_entries_past_the_newest_checkpoint_are_refused_not_skipped(tmp_path: Path) -> None:
    saved = Saved(tmp_path, _rewritten(OLD), HONEST)
    with pytest.raises(VerificationFailed, match=r"entries 3\.\.6 past the newest checkpoint"):
        verify_files(KEY, saved.cp1, entries=saved.entries)
    honest = Saved(tmp_path, HONEST, HONEST)
    with pytest.raises(VerificationFailed, match=r"tlog entries --at .*cp1\.note"):
        verify_files(KEY, honest.cp1, entries=honest.entries)
    honest.entries.write_text("".join(honest.entries.read_text().splitlines(True)[:5]))
    with pytest.raises(VerificationFailed, match=r"5 entries, .* has 7: entries 5\.\.6 missing"):
        verify_files(KEY, honest.cp2, entries=honest.entries)


def test_proofs_for_another_size_than_the_newest_are_refused(tmp_path: Path) -> None:
    saved = Saved(tmp_path, HONEST, HONEST)
    old_proof = saved.inclusion(1, OLD)
    with pytest.raises(VerificationFailed, match=r"for tree size 3, .* has size 7.* --at"):
        verify_files(
            KEY, saved.cp1, newer=saved.cp2, consistency=saved.consistency, inclusion=old_proof
        )
    assert (
        verify_files(KEY, saved.cp1, inclusion=old_proof)[-1] == "entry 1 is in the tree of size 3"
    )
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"first_size": 2, "second_size": NEW, "hashes": []}))
    with pytest.raises(VerificationFailed, match=r"proves sizes 2 -> 7, .* 3 -> 7.*--from"):
        verify_files(KEY, saved.cp1, newer=saved.cp2, consistency=other)


def test_files_that_cannot_be_checked_are_refused(tmp_path: Path) -> None:
    saved = Saved(tmp_path, HONEST, HONEST)
    with pytest.raises(VerificationFailed, match="--newer and --consistency go together"):
        verify_files(KEY, saved.cp1, newer=saved.cp2, entries=saved.entries)
    with pytest.raises(VerificationFailed, match="--newer and --consistency go together"):
        verify_files(KEY, saved.cp1, consistency=saved.consistency)
    with pytest.raises(VerificationFailed, match="--code needs --inclusion"):
        verify_files(KEY, saved.cp2, code="https://id.example/01/09520123456788/21/A")
    # A newer checkpoint of a fork (entry 1 rewritten, then signed) does not extend cp1.
    fork = [merkle.leaf_hash(e) for e in _rewritten(1)]
    saved.cp2.write_text(SIGNER.sign(Checkpoint(ORIGIN, NEW, merkle.root(fork)).body()))
    with pytest.raises(VerificationFailed, match=r"cp2\.note does not extend .*cp1\.note"):
        verify_files(KEY, saved.cp1, newer=saved.cp2, consistency=saved.consistency)
