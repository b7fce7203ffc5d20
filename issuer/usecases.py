"""Issuer use cases: mint, sign, store and stream codes exactly once; manage signing keys.

Exactly-once: an issuance is identified by (tenant, request id). Its codes are generated in
chunks; each chunk is inserted and the request's ``generated`` counter advanced in ONE
transaction, under a row lock on the request, before anything is sent. A retry (after a
timeout or a crash) replays stored chunks and generates only what is missing, so the same
request id always yields the same codes in the same order and no code goes to two requests.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from issuer.domain.commands import IssueCommand, ValidIssue, validate_issue
from issuer.domain.encoding import CodeFormatter, CompactFormatter
from issuer.domain.keys import key_id as next_key_id
from issuer.domain.records import CodeRow, IssueRequestRow, Minted, MintSpec, StoredKey
from issuer.domain.serials import check_bound
from issuer.minting import MintWorkers, mint
from issuer.ports import IssuerStorage
from sealmark.clock import Clock
from sealmark.crypto.keys import KeyVault, SealedKey, Signer
from sealmark.crypto.mac import MacScheme
from sealmark.crypto.pins import PinScheme
from sealmark.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from sealmark.events import NewEvent
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.tenancy.model import CodeProfile, Principal, Product, Role
from sealmark.tenancy.usecases import product_for
from sealmark.validators import check_request_id

RandomBytes = Callable[[int], bytes]
CHUNK = 5_000
log = structlog.get_logger("sealmark.issuer")


@dataclass(frozen=True)
class IssuedCode:
    index: int
    serial: str
    element_string: str
    digital_link: str
    hri: str
    signature: str
    key_id: str
    pin: str
    mac: str = ""  # AI 92 value of a compact-profile code; signature is empty then


@dataclass(frozen=True)
class IssueBatch:
    request: IssueRequestRow
    total: int
    codes: list[IssuedCode]


class Issuer:
    """Issuance and signing keys, over the Issuer's storage port and the tenancy port (the
    caller's products)."""

    def __init__(
        self,
        storage: IssuerStorage,
        tenancy: UnitOfWorkFactory,
        clock: Clock,
        random_bytes: RandomBytes,
        pins: PinScheme,
        keys: KeyVault,
        guess_bound: float,
        sign_threads: int = 2,
        workers: MintWorkers | None = None,
        macs: MacScheme | None = None,
    ) -> None:
        self._storage = storage
        self._tenancy = tenancy
        self._clock = clock
        self._random = random_bytes
        self._pins = pins
        self._keys = keys
        self._bound = guess_bound
        self._signers: dict[tuple[str, str], Signer] = {}
        self._sealed: dict[tuple[str, str], SealedKey] = {}
        self._workers = workers
        self._macs = macs
        self._lock = threading.Lock()
        self._sign_threads = sign_threads
        self._sign_pool = ThreadPoolExecutor(max(1, sign_threads), thread_name_prefix="sign")
        # Per stream, at most two chunks are minted ahead and one written ahead.
        self._mint_pool = ThreadPoolExecutor(4, thread_name_prefix="mint")
        self._write_pool = ThreadPoolExecutor(4, thread_name_prefix="write")

    def start_workers(self) -> None:
        """Spawn the minting processes now rather than on the first issuance."""
        if self._workers is not None:
            self._workers.start()

    # -- issuance -----------------------------------------------------------------------
    def issue(self, principal: Principal, command: IssueCommand) -> Iterator[IssueBatch]:
        """Stream the request's codes from ``resume_from``, in batches, each durable first."""
        principal.require(Role.LINE)
        cmd = validate_issue(command, today=self._clock.now().date())
        product = product_for(self._tenancy, principal, cmd.gtin, field="IssueCodesRequest.gtin")
        with self._storage.transaction() as tx:
            tenant = tx.tenants.get(principal.tenant_id)
        request = self._storage.retrying(
            lambda: self._open_request(principal.tenant_id, cmd, product)
        )
        signer = self._signer(principal.tenant_id, request.key_id)
        formatter: CodeFormatter | CompactFormatter
        if product.code_profile is CodeProfile.COMPACT:
            formatter = CompactFormatter(request.gtin, tenant.resolver_host)
        else:
            formatter = CodeFormatter(
                request.gtin,
                request.lot,
                request.expiry,
                request.production_date,
                tenant.resolver_host,
            )
        pending: list[IssuedCode] = []
        first = cmd.resume_from - cmd.resume_from % CHUNK
        for rows in self._chunks(request, product, signer, first):
            for row in rows:
                if row.seq < cmd.resume_from:
                    continue
                pending.append(self._present(row, request, product, formatter))
                if len(pending) >= cmd.batch_size:
                    yield IssueBatch(request, request.quantity, pending)
                    pending = []
        if pending:
            yield IssueBatch(request, request.quantity, pending)

    def request_pool(self, principal: Principal, command: IssueCommand) -> IssueRequestRow:
        """Mint a whole pool now (durable), for a line that will print offline; stream it later
        with IssueCodes and the same request id. Idempotent like IssueCodes."""
        principal.require(Role.LINE)
        cmd = validate_issue(command, today=self._clock.now().date(), prefix="RequestPoolRequest")
        product = product_for(self._tenancy, principal, cmd.gtin, field="RequestPoolRequest.gtin")
        request = self._storage.retrying(
            lambda: self._open_request(principal.tenant_id, cmd, product)
        )
        signer = self._signer(principal.tenant_id, request.key_id)
        first = request.generated - request.generated % CHUNK
        for _ in self._chunks(request, product, signer, first):
            pass
        return self.pool(principal, request.request_id)[0]

    def pool(self, principal: Principal, request_id: str) -> tuple[IssueRequestRow, dict[str, int]]:
        """The pool (issuance request) and how many of its codes are in each state."""
        with self._storage.transaction() as tx:
            store = tx.issuance
            request = store.request(principal.tenant_id, request_id)
            return request, store.state_counts(principal.tenant_id, request_id)

    def _open_request(self, tenant_id: str, cmd: ValidIssue, product: Product) -> IssueRequestRow:
        with self._storage.transaction() as tx:
            store = tx.issuance
            active = store.active_key(tenant_id)
            key_id = active.key_id
            self._open_signer(tenant_id, active)  # a key we cannot sign with writes nothing
            if product.code_profile is CodeProfile.COMPACT:
                self._need_macs(product)  # nor does a compact product without the MAC secret
            wanted = IssueRequestRow(
                tenant_id,
                cmd.request_id,
                cmd.gtin,
                cmd.lot,
                cmd.expiry,
                cmd.production_date,
                cmd.quantity,
                cmd.line_id,
                cmd.work_order,
                key_id,
                0,
            )
            if cmd.lot in tx.lines.held_lots(cmd.gtin, [cmd.lot]):
                raise FailedPrecondition(f"IssueCodesRequest.lot: lot {cmd.lot} is on hold")
            if store.create_request(wanted):
                issued_before = store.reserve_serials(cmd.gtin, cmd.quantity)
                check_bound(issued_before, cmd.quantity, product.serial_space, self._bound)
                tx.commit()
                return wanted
            existing = store.request(tenant_id, cmd.request_id)
        same = (
            existing.gtin,
            existing.lot,
            existing.expiry,
            existing.production_date,
            existing.quantity,
            existing.line_id,
            existing.work_order,
        )
        if same != (
            cmd.gtin,
            cmd.lot,
            cmd.expiry,
            cmd.production_date,
            cmd.quantity,
            cmd.line_id,
            cmd.work_order,
        ):
            raise FailedPrecondition(
                f"request_id {cmd.request_id} was used for a different issuance "
                f"(gtin {existing.gtin}, lot {existing.lot}, quantity {existing.quantity})"
            )
        return existing

    def _chunks(
        self, request: IssueRequestRow, product: Product, signer: Signer, first: int
    ) -> Iterator[list[CodeRow]]:
        """The request's chunks from ``first`` on, each durable before it is yielded.

        A three-stage pipeline keeps both cores busy: while the caller streams chunk i, chunk
        i+1 is being written (COPY and commit; psycopg2 waits without the GIL) and chunk i+2
        is being minted (serials drawn, signed on the sign threads, PINs derived). Minting
        ahead is pure computation: nothing is stored or sent until the chunk's own
        transaction, in order, under the request's row lock, so exactly-once is unchanged.
        Chunks already stored (a resume) are read back instead, and their minting skipped.
        """
        starts = range(first, request.quantity, CHUNK)
        mints: deque[Future[Minted | None]] = deque()
        writes: deque[Future[list[CodeRow]]] = deque()
        generated = request.generated

        def mint(start: int) -> Minted | None:
            if start < generated:
                return None  # stored already: the write stage reads it back
            seqs = list(range(start, min(start + CHUNK, request.quantity)))
            return self._mint(request, product, signer, seqs)

        def write(
            start: int, minted: Future[Minted | None], previous: Future[list[CodeRow]] | None
        ) -> list[CodeRow]:
            if previous is not None:
                previous.result()  # chunks commit in order; a failure stops the ones after it
            stop = min(start + CHUNK, request.quantity)
            return self._storage.retrying(
                functools.partial(
                    self._store_chunk, request, product, signer, start, stop, minted.result()
                )
            )

        upcoming = iter(starts)
        try:
            for start in itertools.islice(upcoming, 2):
                mints.append(self._mint_pool.submit(mint, start))
            for start in starts:
                previous = writes[-1] if writes else None
                writes.append(self._write_pool.submit(write, start, mints.popleft(), previous))
                following = next(upcoming, None)
                if following is not None:
                    mints.append(self._mint_pool.submit(mint, following))
                if len(writes) > 1 or following is None:
                    yield writes.popleft().result()
            while writes:
                yield writes.popleft().result()
        finally:
            # The caller went away (or failed): let nothing run on for this stream. A write
            # already running completes or rolls back by itself; later ones never start.
            for minting in mints:
                minting.cancel()
            for writing in writes:
                writing.cancel()

    def _store_chunk(
        self,
        request: IssueRequestRow,
        product: Product,
        signer: Signer,
        start: int,
        stop: int,
        minted: Minted | None,
    ) -> list[CodeRow]:
        """Store codes ``start..stop`` of the request and advance its counter, in one
        transaction under its row lock; or read them back when they are stored already."""
        with self._storage.transaction() as tx:
            store = tx.issuance
            current = store.request(request.tenant_id, request.request_id, lock=True)
            revoked = store.revocation(request.tenant_id, request.key_id)
            if revoked is not None:
                raise FailedPrecondition(
                    f"request {request.request_id}: its signing key {request.key_id} was revoked"
                    f" at {revoked[0].isoformat()} ({revoked[1]}); its codes must not be"
                    " printed: issue them again under a new request id"
                )
            if current.generated >= stop:
                return store.codes(request.tenant_id, request.request_id, start, stop)
            if current.generated != start:
                raise FailedPrecondition(
                    f"request {request.request_id}: chunks out of order ({current.generated})"
                )
            if minted is None or minted.seqs[0] != start:
                minted = self._mint(request, product, signer, list(range(start, stop)))
            by_seq: dict[int, CodeRow] = {}
            while True:
                collided = store.insert_codes(request, minted)
                redo = []
                for key, row in zip(minted.code_keys, minted.rows(), strict=True):
                    if key in collided:
                        redo.append(row.seq)
                    else:
                        by_seq[row.seq] = row
                if not redo:
                    break
                minted = self._mint(request, product, signer, redo)  # redraw only those
            store.set_generated(request.tenant_id, request.request_id, stop)
            tx.events.append(
                NewEvent(
                    tenant_id=request.tenant_id,
                    kind="codes.issued",
                    subject=f"issue:{request.request_id}",
                    occurred_at=minted.at,
                    payload={
                        "gtin": request.gtin,
                        "lot": request.lot,
                        "first": start,
                        "count": stop - start,
                        "key_id": request.key_id,
                        "work_order": request.work_order,
                        "line_id": request.line_id,
                    },
                    request_id=request.request_id,
                )
            )
            tx.commit()
        return [by_seq[seq] for seq in range(start, stop)]

    def _mint(
        self, request: IssueRequestRow, product: Product, signer: Signer, seqs: list[int]
    ) -> Minted:
        """Draw and sign codes for ``seqs``: in the worker processes for a software key,
        here (on the sign threads) for a token key or an injected random source."""
        spec = MintSpec(
            request.tenant_id,
            request.request_id,
            request.gtin,
            request.lot,
            request.expiry,
            request.production_date,
            signer.key_id,
            request.work_order,
            request.line_id,
            product.alphabet,
            product.serial_length,
            product.pin_length,
        )
        now = self._clock.now()
        if product.code_profile is CodeProfile.COMPACT:
            # A MAC costs about 2 µs (a signature 17 times that): no worker, no signer.
            encode = self._need_macs(product).encoder(
                request.tenant_id, signer.key_id, request.gtin
            )
            return mint(spec, seqs, _never_sign, self._pins, self._random, now, mac=encode)
        with self._lock:
            sealed = self._sealed.get((request.tenant_id, signer.key_id))
        if self._workers is not None and sealed is not None and sealed.backend == "software":
            return self._workers.mint(spec, seqs, sealed, now)
        return mint(
            spec, seqs, functools.partial(self._sign_all, signer), self._pins, self._random, now
        )

    def _sign_all(self, signer: Signer, messages: list[bytes]) -> list[bytes]:
        """Sign on several threads: the Ed25519 binding releases the GIL while it signs."""
        if self._sign_threads < 2 or len(messages) < 256:
            return [signer.sign(m) for m in messages]
        step = -(-len(messages) // self._sign_threads)
        parts = [messages[i : i + step] for i in range(0, len(messages), step)]
        results = self._sign_pool.map(lambda part: [signer.sign(m) for m in part], parts)
        return [signature for part in results for signature in part]

    def _present(
        self,
        row: CodeRow,
        request: IssueRequestRow,
        product: Product,
        formatter: CodeFormatter | CompactFormatter,
    ) -> IssuedCode:
        printed = formatter.print(row.serial, row.signature)
        compact = product.code_profile is CodeProfile.COMPACT
        return IssuedCode(
            index=row.seq,
            serial=row.serial,
            element_string=printed.element_string,
            digital_link=printed.digital_link,
            hri=printed.hri,
            signature="" if compact else row.signature,
            key_id=request.key_id,
            pin=row.pin or self._pins.pin(request.gtin + row.serial, product.pin_length),
            mac=row.signature if compact else "",
        )

    def _need_macs(self, product: Product) -> MacScheme:
        if self._macs is None:
            raise FailedPrecondition(
                f"product {product.gtin} has the compact code profile: set SEALMARK_MAC_SECRET"
                " (the secret its MAC keys are derived from)"
            )
        return self._macs

    def _signer(self, tenant_id: str, key_id: str) -> Signer:
        with self._lock:
            signer = self._signers.get((tenant_id, key_id))
        if signer is None:
            with self._storage.transaction() as tx:
                sealed = tx.issuance.sealed_key(tenant_id, key_id)
            signer = self._open_signer(tenant_id, sealed)
        return signer

    def _open_signer(self, tenant_id: str, sealed: SealedKey) -> Signer:
        """The cached signer of ``sealed``, opened (decrypted, or found in the token) once."""
        with self._lock:
            signer = self._signers.get((tenant_id, sealed.key_id))
        if signer is None:
            signer = self._keys.signer(sealed)
            with self._lock:
                signer = self._signers.setdefault((tenant_id, sealed.key_id), signer)
                self._sealed.setdefault((tenant_id, sealed.key_id), sealed)
            if self._workers is not None and sealed.backend != "software":
                # A token session belongs to the process that opened it: no worker can sign
                # with this key, so its codes are signed here, one at a time.
                log.info(
                    "issuer.signing_in_process",
                    tenant_id=tenant_id,
                    key_id=sealed.key_id,
                    backend=sealed.backend,
                    reason="a PKCS#11 session cannot be shared with the minting processes",
                )
        return signer

    # -- keys ---------------------------------------------------------------------------
    def rotate_key(
        self, tenant_id: str, request_id: str = "", revoke_previous: bool = False, reason: str = ""
    ) -> StoredKey:
        """Add a new signing key; the previous one is retired but keeps verifying. With
        ``revoke_previous`` (a compromised key; ``reason`` required) it is also revoked: offline
        checkers stop trusting it and its requests are never streamed to a line again. A
        ``request_id`` makes the rotation idempotent: a retry returns the key it created."""
        if request_id:
            check_request_id(request_id, "RotateKeyRequest.request_id")
        if len(reason) > 500:
            raise InvalidArgument("RotateKeyRequest.reason", "at most 500 characters")
        if revoke_previous and not reason.strip():
            raise InvalidArgument(
                "RotateKeyRequest.reason", "required with revoke_previous: say why it is revoked"
            )
        with self._storage.transaction() as tx:
            store = tx.issuance
            count = store.lock_tenant_keys(tenant_id)
            tx.tenants.get(tenant_id)
            earlier = store.rotation(tenant_id, request_id) if request_id else None
            if earlier is not None:
                if earlier[1] != revoke_previous:
                    raise AlreadyExists(
                        f"RotateKeyRequest.request_id {request_id} was used for a rotation "
                        f"{'with' if earlier[1] else 'without'} revoke_previous"
                    )
                return next(k for k in store.keys(tenant_id) if k.key_id == earlier[0])
            key_id = next_key_id(count + 1)
            now = self._clock.now()
            previous = store.add_key(
                tenant_id,
                self._keys.create(tenant_id, key_id),
                now,
                request_id=request_id or None,
                revoke_reason=reason.strip() if revoke_previous else None,
            )
            payload: dict[str, object] = {"key_id": key_id, "previous": previous}
            if revoke_previous:
                payload.update(revoked=previous, reason=reason.strip())
            tx.events.append(
                NewEvent(
                    tenant_id=tenant_id,
                    kind="keys.rotated",
                    subject=f"key:{key_id}",
                    occurred_at=now,
                    payload=payload,
                    request_id=request_id or None,
                )
            )
            tx.commit()
            return next(k for k in store.keys(tenant_id) if k.key_id == key_id)

    def key_set(self, tenant_id: str) -> list[StoredKey]:
        with self._storage.transaction() as tx:
            tx.tenants.get(tenant_id)
            return tx.issuance.keys(tenant_id)

    def issued_count(self, gtin: str) -> int:
        with self._storage.transaction() as tx:
            return tx.issuance.issued_count(gtin)


def _never_sign(messages: list[bytes]) -> list[bytes]:
    raise AssertionError("compact-profile codes carry a MAC and are never signed")
