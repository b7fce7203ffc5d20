"""Scans appended to PostgreSQL in batches, off the request path.

A verification returns once its scan is queued here; a flusher thread writes the queue with one
COPY every ``FLUSH_EVERY_S`` (or sooner when ``FLUSH_ROWS`` are waiting). The window: a scan is
durable at most ``FLUSH_EVERY_S`` after its answer. A graceful stop flushes everything; a crash
of the process (SIGKILL, power) loses at most the last window. Redis plays no part in
durability, so restarting Redis loses nothing. While PostgreSQL refuses a batch, the batch stays
queued and is retried (idempotent by verification id). Batches go to a
:class:`~verifier.ports.ScanSink` (``verifier.postgres`` in production, ``verifier.memory`` in
unit tests).
"""

from __future__ import annotations

import threading
import time

import structlog

from sealmark.errors import Unavailable
from verifier.ports import ScanRow, ScanSink

log = structlog.get_logger("sealmark.verifier")

FLUSH_EVERY_S = 0.1
FLUSH_ROWS = 2_000
MAX_QUEUED = 500_000  # beyond this (PostgreSQL down for long) new scans are refused


class ScanLog:
    def __init__(self, sink: ScanSink, *, every_s: float = FLUSH_EVERY_S) -> None:
        self._sink = sink
        self._every_s = every_s
        self._queue: list[ScanRow] = []
        # Batches taken from the queue and not yet committed: still pending for readers,
        # or a rebuild in that moment would see a scan in neither place.
        self._writing: list[list[ScanRow]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="scan-log", daemon=True)
        self._thread.start()

    def append(self, scan: ScanRow) -> None:
        """Queue the scan. Unavailable when ``MAX_QUEUED`` scans are already waiting: the
        sink has refused them for so long that this process must stop answering scans it
        could not record (retry later), rather than grow without bound."""
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                raise Unavailable("scan log full: PostgreSQL has refused scans for too long")
            self._queue.append(scan)
            if len(self._queue) >= FLUSH_ROWS:
                self._wake.set()

    @property
    def failing(self) -> bool:
        """True while the sink refuses the scans (since the last write failed)."""
        return self._failing

    def pending(self, code_key: str) -> list[ScanRow]:
        """Scans of ``code_key`` not yet written (for rebuilding its history)."""
        with self._lock:
            return [
                s
                for batch in (*self._writing, self._queue)
                for s in batch
                if s.code_key == code_key
            ]

    def flush(self) -> int:
        """Write what is queued now; return how many were written."""
        with self._lock:
            batch, self._queue = self._queue, []
            if not batch:
                return 0
            self._writing.append(batch)
        try:
            self._sink.append_scans(batch)
        except Exception:
            self._failing = True
            with self._lock:
                self._queue[:0] = batch  # keep the order; retried on the next round
            raise
        else:
            self._failing = False
        finally:
            with self._lock:
                self._writing = [b for b in self._writing if b is not batch]
        return len(batch)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the flusher after writing everything queued (within ``timeout_s``)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        while self._queue and time.monotonic() < deadline:
            try:
                self.flush()
            except Exception as exc:
                log.error("verifier.scan_flush_failed", error=str(exc), queued=len(self._queue))
                time.sleep(0.2)
        if self._queue:
            log.error("verifier.scans_lost_at_stop", count=len(self._queue))

    def _run(self) -> None:
        backoff = self._every_s
        while not self._stopping:
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stopping:
                return
            try:
                self.flush()
                backoff = self._every_s
            except Exception as exc:
                log.warning("verifier.scan_flush_failed", error=str(exc), queued=len(self._queue))
                backoff = min(backoff * 2, 2.0)
