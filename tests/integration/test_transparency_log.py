"""The transparency log's integration on a real PostgreSQL: an event whose transaction commits
after a later one is still integrated (once), concurrent integrations never write an index
twice, and every signed checkpoint verifies and extends the one before."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg2
import pytest

from audit.transparency import TransparencyLog
from sealmark.events import NewEvent
from sealmark.storage.postgres_repos import PgEvents
from sealmark.tlog import merkle
from sealmark.tlog.note import open_checkpoint, parse_verifier_key
from sealmark_app.root.audit import build_transparency_log
from tests.e2e.conftest import make_container
from tests.support.tenants import seed_tenant


@pytest.fixture()
def log(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, "tlog", tokens={})
    yield {"log": build_transparency_log(container), "tenant": brand.tenant_id, "dsn": pg_dsn}
    container.close()


class _Cursor:
    """A raw connection as the events repository's executor: the event is appended as every
    writer appends it (queued for the log by the same statement), in ``conn``'s transaction."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description is not None else []

    def defer(self, sql: str, params: Any = None) -> None:
        self.execute(sql, params)


def _event(conn: Any, tenant: str, n: int) -> None:
    PgEvents(_Cursor(conn)).append(
        NewEvent(
            tenant,
            "logistics.received",
            f"event:{n}",
            datetime.now(UTC),
            {"codes": [f"sscc:{n:018d}"], "affected": 1},
            f"e{n}",
        )
    )


def _entries(log: TransparencyLog, tenant: str) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in log.entries(tenant, 0, 1000)]


def test_a_late_commit_is_integrated_once(log: dict[str, Any]) -> None:
    tlog, tenant = log["log"], log["tenant"]
    early = psycopg2.connect(log["dsn"])
    late = psycopg2.connect(log["dsn"])
    try:
        _event(early, tenant, 1)  # takes the lower id, commits last
        _event(late, tenant, 2)
        late.commit()
        first = tlog.integrate(tenant)
        assert [e["event_id"] for e in _entries(tlog, tenant)] == ["e2"]
        early.commit()
        second = tlog.integrate(tenant)
        assert [e["event_id"] for e in _entries(tlog, tenant)] == ["e2", "e1"]
        assert tlog.integrate(tenant).size == second.size == first.size + 1 == 2
    finally:
        early.close()
        late.close()


def test_concurrent_integrations_append_each_event_once(log: dict[str, Any]) -> None:
    tlog, tenant = log["log"], log["tenant"]
    conn = psycopg2.connect(log["dsn"])
    heads = []

    def integrate() -> None:
        for _ in range(5):
            heads.append(tlog.integrate(tenant))

    try:
        for n in range(40):
            _event(conn, tenant, n)
            conn.commit()
            if n == 10:
                workers = [threading.Thread(target=integrate) for _ in range(4)]
                for worker in workers:
                    worker.start()
        for worker in workers:
            worker.join()
        final = tlog.integrate(tenant)
    finally:
        conn.close()
    ids = [e["event_id"] for e in _entries(tlog, tenant)]
    assert sorted(ids) == sorted(f"e{n}" for n in range(40)) and final.size == 40
    # Every checkpoint any integration signed verifies and is a prefix of the final tree.
    verifier = parse_verifier_key(tlog.verifier_key(final))
    leaves = [merkle.leaf_hash(e.data) for e in tlog.entries(tenant, 0, 1000)]
    for head in [*heads, final]:
        checkpoint = open_checkpoint(head.signed_note, [verifier])
        assert checkpoint.size == head.size
        assert checkpoint.root_hash == merkle.root(leaves[: head.size])
