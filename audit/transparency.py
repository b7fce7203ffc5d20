"""The transparency log: one RFC 9162 Merkle tree per tenant over audit entries, with signed
C2SP checkpoints and inclusion and consistency proofs.

Writers never touch it: logged domain events are queued by a trigger in their own transaction
(migration 0010) and :meth:`TransparencyLog.integrate` turns the queue into entries, extends the
tree and signs a new checkpoint under the tenant's head row lock. Entries commit to units with
:func:`audit.domain.unit_commitment`, never with raw serials, PINs or consumer locations.

The tree is rebuilt from the stored leaf hashes for each proof: 32 bytes and one hash per
entry, fine for the millions of entries a tenant writes in years (entries are per batch and
per event, not per code)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.domain import entry_bytes, unit_commitment
from audit.ports import Head, TlogStorage, TlogStore
from sealmark.clock import Clock
from sealmark.crypto.keys import SealedKey, generate_sealed_key, unseal_private
from sealmark.errors import InvalidArgument, NotFound
from sealmark.tlog import merkle
from sealmark.tlog.note import Checkpoint, NoteSigner

ENTRY_KINDS = {
    "codes.issued": "batch_commitment",
    "audit.recalled": "recall",
    "keys.rotated": "key_set_change",
    "keys.revoked": "key_set_change",
}  # every other logged kind is a status change
LOG_ENTRIES_MAX = 1000


@dataclass(frozen=True)
class CodeInclusion:
    """A code's commitment is leaf ``position`` of its batch tree (``batch_size`` leaves)."""

    commitment: bytes
    position: int
    batch_size: int
    hashes: list[bytes]


@dataclass(frozen=True)
class LogEntry:
    index: int
    kind: str
    data: bytes
    integrated_at: datetime


class TransparencyLog:
    def __init__(
        self,
        storage: TlogStorage,
        clock: Clock,
        passphrase: Callable[[], bytes],
        origin_prefix: str,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._passphrase = passphrase
        self._origin_prefix = origin_prefix.rstrip("/")
        self._keys: dict[bytes, Ed25519PrivateKey] = {}

    def integrate(self, tenant_id: str) -> Head:
        """Append every queued event of the tenant and sign a checkpoint over the new tree
        (the current one when nothing was queued)."""
        with self._storage.transaction() as store:
            head = store.head(tenant_id, lock=True)
            if head is None:
                head = self._create(store, tenant_id)
            events = store.take_queue(tenant_id)
            if events:
                now = self._clock.now()
                entries = [
                    (ENTRY_KINDS.get(e[1], "status_change"), self._entry(store, tenant_id, *e))
                    for e in events
                ]
                leaves = store.leaf_hashes(tenant_id, head.size)
                added = [merkle.leaf_hash(data) for _, data in entries]
                store.append(
                    tenant_id,
                    head.size,
                    [
                        (kind, data, leaf, e[0])
                        for (kind, data), leaf, e in zip(entries, added, events, strict=True)
                    ],
                    now,
                )
                head = self._sign(store, head, leaves + added, now)
        return head

    def _create(self, store: TlogStore, tenant_id: str) -> Head:
        origin = f"{self._origin_prefix}/{tenant_id}"
        key_name = origin
        sealed = generate_sealed_key(key_name, self._passphrase())
        signer = NoteSigner(key_name, unseal_private(sealed, self._passphrase()))
        body = Checkpoint(origin, 0, merkle.EMPTY_ROOT).body()
        head = Head(
            tenant_id,
            origin,
            key_name,
            sealed.public_key,
            sealed.private_key_pem or b"",
            0,
            merkle.EMPTY_ROOT,
            signer.sign(body),
            self._clock.now(),
        )
        store.create_head(head)
        stored = store.head(tenant_id, lock=True)  # ours, or a racing first integration's
        assert stored is not None
        return stored

    def _sign(self, store: TlogStore, head: Head, leaves: list[bytes], now: datetime) -> Head:
        root = merkle.root(leaves)
        note = NoteSigner(head.key_name, self._private(head)).sign(
            Checkpoint(head.origin, len(leaves), root).body()
        )
        new = Head(
            head.tenant_id,
            head.origin,
            head.key_name,
            head.public_key,
            head.private_key_pem,
            len(leaves),
            root,
            note,
            now,
        )
        store.update_head(new)
        return new

    def _private(self, head: Head) -> Ed25519PrivateKey:
        """The log's key, decrypted once per process (PKCS#8 decryption is deliberately slow)."""
        key = self._keys.get(head.public_key)
        if key is None:
            sealed = SealedKey(head.key_name, head.public_key, head.private_key_pem)
            key = self._keys[head.public_key] = unseal_private(sealed, self._passphrase())
        return key

    def verifier_key(self, head: Head) -> str:
        """The C2SP verifier key auditors check this log's checkpoints with."""
        return NoteSigner(head.key_name, self._private(head)).verifier_key()

    def _entry(
        self,
        store: TlogStore,
        tenant_id: str,
        event_id: int,
        kind: str,
        request_id: str,
        occurred_at: datetime,
        payload: dict[str, Any],
    ) -> bytes:
        fields: dict[str, Any] = {
            "tenant": tenant_id,
            "event": kind,
            "event_id": request_id,
            "at": occurred_at.isoformat(),
        }
        if kind == "codes.issued":
            keys = store.batch_units(
                tenant_id, request_id, int(payload["first"]), int(payload["count"])
            )
            fields.update(
                type="batch_commitment",
                gtin=payload.get("gtin"),
                lot=payload.get("lot"),
                key_id=payload.get("key_id"),
                first=payload["first"],
                count=len(keys),
                root=merkle.root([unit_commitment(k, s) for k, s in keys]).hex(),
            )
        elif kind == "audit.recalled":
            fields.update(
                type="recall",
                **{
                    k: payload.get(k)
                    for k in ("recall_id", "scope", "gtin", "lot", "affected", "reason")
                },
            )
        elif kind.startswith("keys."):
            key_id = str(payload.get("key_id") or "")
            public = store.public_key(tenant_id, key_id)
            fields.update(
                type="key_set_change",
                key_id=key_id,
                public_key=public.hex() if public else "",
                **{k: payload.get(k) for k in ("previous", "revoked", "reason") if payload.get(k)},
            )
        else:
            units = _named_units(payload)
            signed = store.signatures(tenant_id, units)
            fields.update(
                type="status_change",
                state=payload.get("state") or kind.split(".", 1)[1],
                units=len(units),
                affected=payload.get("affected", len(units)),
                root=merkle.root(
                    sorted(unit_commitment(k, signed.get(k, "")) for k in units)
                ).hex(),
            )
            if payload.get("destination_market"):
                fields["market"] = payload["destination_market"]
        if payload.get("epcis_event_id"):
            # The eventID the caller was answered with and the EPCIS export writes.
            fields["epcis_event_id"] = payload["epcis_event_id"]
        if payload.get("epcis_event_ids"):  # a line's batch: one event per lot and expiry
            fields["epcis_event_ids"] = payload["epcis_event_ids"]
        return entry_bytes(fields)

    # -- reads --------------------------------------------------------------------------
    def checkpoint(self, tenant_id: str) -> Head:
        """The latest signed checkpoint, after integrating what is queued."""
        return self.integrate(tenant_id)

    def _proof_size(self, tenant_id: str, tree_size: int) -> int:
        """The tree size a proof is for (0: the latest), after integrating what is queued."""
        head = self.integrate(tenant_id)
        size = tree_size or head.size
        if size > head.size:
            raise InvalidArgument(
                "GetInclusionProofRequest.tree_size", f"{size} exceeds the latest size {head.size}"
            )
        return size

    def inclusion_proof(
        self, tenant_id: str, index: int | None, leaf: bytes | None, tree_size: int
    ) -> tuple[int, int, list[bytes], bytes]:
        """The proof that entry ``index`` (or the entry whose leaf hash is ``leaf``) is in the
        tree of ``tree_size`` entries (0: the latest): (index, size, path, the entry's bytes,
        whose leaf hash is the proven leaf)."""
        size = self._proof_size(tenant_id, tree_size)
        name = "GetInclusionProofRequest"
        with self._storage.reads() as store:
            if leaf is not None:
                if len(leaf) != 32:
                    raise InvalidArgument(f"{name}.leaf_hash", f"{len(leaf)} bytes, want 32")
                index = store.index_of(tenant_id, leaf)
                if index is None:
                    raise NotFound(f"{name}.leaf_hash: no such entry in the log")
            if index is None:
                raise InvalidArgument(f"{name}.leaf", "required: leaf_index or leaf_hash")
            if index >= size:
                raise InvalidArgument(f"{name}.leaf_index", f"{index} >= tree size {size}")
            leaves = store.leaf_hashes(tenant_id, size)
            entry = store.entry(tenant_id, index)
        return index, size, merkle.inclusion_proof(index, leaves), entry

    def code_proof(
        self, tenant_id: str, code_key: str, tree_size: int
    ) -> tuple[int, int, list[bytes], bytes, CodeInclusion]:
        """The proof of the issuance entry that holds ``code_key`` (index, size, path, entry
        bytes) and the code's place in that batch's tree."""
        size = self._proof_size(tenant_id, tree_size)
        name = "GetInclusionProofRequest"
        with self._storage.reads() as store:
            found = store.batch_entry_of(tenant_id, code_key)
            if found is None:
                raise NotFound(f"{name}.code: no logged issuance of this code of yours")
            index, entry, request_id, first, count = found
            if index >= size:
                raise InvalidArgument(f"{name}.tree_size", f"{size}: the code's entry is {index}")
            units = store.batch_units(tenant_id, request_id, first, count)
            leaves = store.leaf_hashes(tenant_id, size)
        commitments = [unit_commitment(k, s) for k, s in units]
        position = next(i for i, (k, _) in enumerate(units) if k == code_key)
        inner = CodeInclusion(
            commitments[position],
            position,
            len(commitments),
            merkle.inclusion_proof(position, commitments),
        )
        return index, size, merkle.inclusion_proof(index, leaves), entry, inner

    def consistency_proof(
        self, tenant_id: str, first: int, second: int
    ) -> tuple[int, int, list[bytes]]:
        head = self.integrate(tenant_id)
        second = second or head.size
        if not 0 < first <= second <= head.size:
            raise InvalidArgument(
                "GetConsistencyProofRequest.first_size",
                f"want 0 < first_size ({first}) <= second_size ({second}) <= {head.size}",
            )
        with self._storage.reads() as store:
            leaves = store.leaf_hashes(tenant_id, second)
        return first, second, merkle.consistency_proof(first, leaves)

    def entries(self, tenant_id: str, start: int, count: int) -> list[LogEntry]:
        if not 1 <= count <= LOG_ENTRIES_MAX:
            raise InvalidArgument(
                "GetLogEntriesRequest.count", f"{count}, want 1..{LOG_ENTRIES_MAX}"
            )
        self.integrate(tenant_id)
        with self._storage.reads() as store:
            rows = store.entries(tenant_id, start, count)
        return [LogEntry(*r) for r in rows]


def _named_units(payload: dict[str, Any]) -> list[str]:
    """The unit keys a logged event names: logistics roots, line-report serials of one GTIN,
    the code an exception replaced or sampled, or a containment change's parent and
    children."""
    if "codes" in payload:
        return [str(k) for k in payload["codes"]]
    if "serials" in payload:
        return [str(payload["gtin"]) + str(s) for s in payload["serials"]]
    named = [str(payload[k]) for k in ("old", "new", "code") if payload.get(k)]
    if named:
        return named
    # A containment change: the parent and the children it took in or let go.
    named = [str(payload["parent"])] if payload.get("parent") else []
    for key in ("children", "removed", "added"):
        named.extend(str(k) for k in payload.get(key) or [])
    return list(dict.fromkeys(named))
