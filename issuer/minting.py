"""Minting: draw a chunk's serials, sign them, derive their PINs and lay the rows out as COPY
text, ready for one durable write. Pure computation: nothing is stored or sent here.

Signing dominates issuance (≈ 32 µs per Ed25519 signature against ≈ 8 µs for everything else
in a code's minting) and the ``cryptography`` binding keeps the GIL for much of it, so threads
alone leave the second core idle. :class:`MintWorkers` runs whole chunks in spawned worker
processes instead; each holds the software keys it has been handed (decrypted there with the
configured passphrase) and draws serials from its own ``os.urandom``. Keys in a PKCS#11 token
stay with the one process that holds the token session, and tests that inject a random source
mint in-process; both go through the same :func:`mint`.

A worker that dies (the OOM killer, an operator's SIGKILL) breaks the whole pool: every chunk
in it fails with ``BrokenProcessPool``. Minting stores nothing, so the pool is replaced and the
chunk minted again; a chunk whose minting breaks a fresh pool too is Unavailable, and the
stream fails before anything of that chunk is written.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

import structlog

from issuer.domain.records import Minted, MintSpec
from issuer.domain.serials import draw_serials
from issuer.postgres import copy_line, copy_line_tail
from sealmark.crypto.keys import SealedKey, SoftwareSigner, unseal
from sealmark.crypto.pins import PinScheme
from sealmark.crypto.signature import ai8030_encoder, canonical_parts
from sealmark.errors import Unavailable
from sealmark.server import affinity
from sealmark.server.processes import on_parent_exit

RandomBytes = Callable[[int], bytes]
SignMany = Callable[[list[bytes]], list[bytes]]

__all__ = ["MintSpec", "MintWorkers", "Minted", "mint"]

log = structlog.get_logger("sealmark.issuer")


def mint(
    spec: MintSpec,
    seqs: list[int],
    sign_many: SignMany,
    pins: PinScheme,
    random_bytes: RandomBytes,
    now: datetime,
    *,
    mac: Callable[[str], str] | None = None,
) -> Minted:
    """Draw ``len(seqs)`` serials, distinct among themselves, and sign them. Serials that
    collide with stored codes are found by the write and minted again by the caller.

    With ``mac`` (serial -> AI (92) value: a compact-profile product) each code carries its
    MAC where a signed one carries its AI (8030) value, and ``sign_many`` is not called."""
    serials: list[str] = []
    seen: set[str] = set()
    while len(serials) < len(seqs):
        wanted = len(seqs) - len(serials)
        for serial in draw_serials(spec.alphabet, spec.serial_length, wanted, random_bytes):
            if serial not in seen:  # drawn twice in this chunk: draw again
                seen.add(serial)
                serials.append(serial)
    gtin, key_id = spec.gtin, spec.key_id
    if mac is None:
        head, tail_bytes = canonical_parts(gtin, spec.lot, spec.expiry.strftime("%y%m%d"), key_id)
        raw = sign_many([head + serial.encode("ascii") + tail_bytes for serial in serials])
        encode = ai8030_encoder(key_id)
        proofs = [encode(signed) for signed in raw]
    else:
        proofs = [mac(serial) for serial in serials]
    tail = copy_line_tail(
        (
            spec.tenant_id,
            gtin,
            spec.lot,
            spec.expiry,
            spec.production_date,
            "allocated",
            key_id,
            spec.work_order,
            spec.line_id,
            spec.request_id,
            now,
            now,
        )
    )
    lines, keys, signatures, codes_pins = [], [], [], []
    for seq, serial, signature in zip(seqs, serials, proofs, strict=True):
        code_key = gtin + serial
        pin = pins.pin(code_key, spec.pin_length)
        pin_hash = pins.pin_hash(code_key, pin)
        lines.append(f"{copy_line(code_key, serial, signature, pin_hash, seq)}\t{tail}\n")
        keys.append(code_key)
        signatures.append(signature)
        codes_pins.append(pin)
    return Minted(seqs, "".join(lines), keys, serials, signatures, codes_pins, now)


class MintWorkers:
    """``processes`` spawned workers minting chunks signed with software keys.

    Started on first use (spawn: the gRPC server's threads are never forked). Each worker gets
    the PIN pepper and the key passphrase once, at start, and caches the keys it decrypts.

    Workers ignore SIGINT: Ctrl-C on a terminal signals the whole foreground process group, and
    it is the server's to stop them (:meth:`close`), after its streams have drained, not a
    KeyboardInterrupt's in the middle of a chunk.
    """

    def __init__(self, processes: int, pepper: bytes, passphrase: bytes) -> None:
        self.processes = processes
        self._pepper = pepper
        self._passphrase = passphrase
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def mint(self, spec: MintSpec, seqs: list[int], key: SealedKey, now: datetime) -> Minted:
        """The chunk minted in a worker. Raises Unavailable when a worker died during it twice
        (on the pool it was given and on a fresh one): nothing was stored, the caller's stream
        fails and its retry resumes."""
        for attempt in (1, 2):
            executor = self._executor()
            try:
                with _sigint_blocked():  # a submit may spawn a worker
                    future = executor.submit(_mint_in_worker, spec, seqs, key, now)
                minted: Minted = future.result()
                return minted
            except BrokenProcessPool as exc:
                self._discard(executor)
                log.warning(
                    "issuer.mint_worker_died",
                    request_id=spec.request_id,
                    first=seqs[0],
                    count=len(seqs),
                    attempt=attempt,
                )
                if attempt == 2:
                    raise Unavailable(
                        f"request {spec.request_id}: a minting worker died while minting codes"
                        f" {seqs[0]}..{seqs[-1]}, twice; nothing of them was stored: retry"
                    ) from exc
        raise AssertionError("unreachable")

    def start(self) -> None:
        """Spawn every worker now (a server calls this at start), so that the first issuance
        does not pay for starting them. Returns at once."""
        executor = self._executor()
        with _sigint_blocked():
            for _ in range(self.processes):
                executor.submit(_ready)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        """Drop ``broken`` so that the next chunk starts a fresh pool (several streams may see
        the same break; only the first replaces it). Its surviving workers are stopped by the
        executor itself."""
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    # A pool started by a pinned server still spreads over the server's CPUs.
                    initargs=(
                        self._pepper,
                        self._passphrase,
                        os.getpid(),
                        sorted(affinity.unpinned_cpus()),
                    ),
                )
            return self._pool


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread meanwhile. A process spawned meanwhile inherits the mask
    through exec, so a Ctrl-C cannot reach it before its initializer ignores SIGINT (the
    interpreter's start-up and the imports take a good part of a second); this process still
    gets its SIGINT, on another thread."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# --- inside a worker process ------------------------------------------------------------------

_worker_pins: PinScheme | None = None
_worker_passphrase = b""
_worker_signers: dict[tuple[str, bytes], SoftwareSigner] = {}


def _start_worker(pepper: bytes, passphrase: bytes, server: int, cpus: list[int]) -> None:
    global _worker_pins, _worker_passphrase
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a SIGINT pending since spawn is dropped
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    os.sched_setaffinity(0, cpus)
    _worker_pins = PinScheme(pepper)
    _worker_passphrase = passphrase
    # A worker blocked on the task queue holds that pipe's write end itself: it would never
    # notice a SIGKILLed server.
    on_parent_exit(server, lambda: os._exit(0))


def _ready() -> None:
    time.sleep(0.05)  # keep this worker busy briefly, so the next submit spawns another


def _mint_in_worker(spec: MintSpec, seqs: list[int], key: SealedKey, now: datetime) -> Minted:
    assert _worker_pins is not None, "worker not started"
    cache_key = (key.key_id, key.public_key)
    signer = _worker_signers.get(cache_key)
    if signer is None:
        signer = _worker_signers[cache_key] = unseal(key, _worker_passphrase)
    sign = signer.sign
    return mint(
        spec, seqs, lambda messages: [sign(m) for m in messages], _worker_pins, os.urandom, now
    )
