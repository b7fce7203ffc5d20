"""The scan log on a real PostgreSQL: a scan is visible to history rebuilds at every moment,
queued, being written, or written (a rebuild during a degraded Redis reads both)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg2
import pytest

from sealmark.storage.postgres import PostgresDatabase
from tests.e2e.conftest import make_container
from verifier.ports import ScanRow
from verifier.postgres import PostgresVerifierStorage
from verifier.scanlog import ScanLog


@pytest.fixture()
def database(pg_dsn: str, redis_url: str) -> Iterator[PostgresDatabase]:
    container = make_container(pg_dsn, redis_url)  # migrated, pooled
    yield container.database
    container.close()


def _scan(code_key: str) -> ScanRow:
    return ScanRow(
        "v-" + os.urandom(6).hex(), None, code_key, "authentic", [], 0.0, "s-1", "DE",
        None, None, True, datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    )  # fmt: skip


def test_a_scan_being_written_is_still_pending(database: PostgresDatabase, pg_dsn: str) -> None:
    log = ScanLog(PostgresVerifierStorage(database), every_s=3600)  # flushed only when told
    key = "0952012345678" + os.urandom(4).hex()
    scan = _scan(key)
    log.append(scan)
    blocker = psycopg2.connect(pg_dsn)
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE scans IN ACCESS EXCLUSIVE MODE")  # the COPY must wait
        flusher = threading.Thread(target=log.flush)
        flusher.start()
        deadline = time.monotonic() + 10
        while log._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not log._queue and flusher.is_alive()
        assert log.pending(key) == [scan]
        blocker.rollback()  # the COPY goes through
        flusher.join(10)
        assert log.pending(key) == []
        with blocker.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM scans WHERE verification_id = %s", (scan.verification_id,)
            )
            assert cur.fetchone() == (1,)
    finally:
        blocker.close()
        log.close()
