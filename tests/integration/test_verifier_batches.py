"""The Verifier's batched round trips on a real PostgreSQL and a real Redis: the codes scanned
together are read in one statement that probes only their keys, and the scans recorded together
go to Redis in one write, each run as its own atomic script, surviving a Redis that lost its
scripts or dropped the connection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import psycopg2
import pytest
import redis

from sealmark.storage.postgres import PostgresDatabase
from sealmark.storage.redis_client import connect_redis
from tests.e2e.conftest import make_container
from tests.support.tenants import seed_tenant
from verifier.domain import ClientContext, History
from verifier.ports import MAX_CODES, Limits
from verifier.postgres import PostgresVerifierStore
from verifier.redis_state import Call, RedisGate, ScanState

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OTHERS = 300  # codes of the tenant besides the ones asked for: what a full read would read


@pytest.fixture(scope="module")
def stored(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, "batches", tokens={})
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, expiry, state, pin_hash,"
            " market) SELECT %s || s, %s, %s, s, 'L-' || s, %s, st, ph, mk"
            " FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::text[]) AS u(s, st, ph, mk)",
            (
                brand.gtin,
                brand.tenant_id,
                brand.gtin,
                date(2030, 1, 31),
                ["A1", "A2", "A3"],
                ["commissioned", "in_transit", "recalled"],
                [None, b"\x01\x02", None],
                [None, "DE", "FR-75"],
            ),
        )
        cur.execute(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, state)"
            " SELECT %s || s, %s, %s, s, 'FILL', 'commissioned'"
            " FROM (SELECT 'F' || i AS s FROM generate_series(1, %s) i) t",
            (brand.gtin, brand.tenant_id, brand.gtin, OTHERS),
        )
    conn.close()
    yield {"brand": brand, "database": PostgresDatabase(pg_dsn, pool_size=1)}
    container.close()


def test_codes_answers_each_stored_key_with_its_own_row(stored: dict[str, Any]) -> None:
    brand = stored["brand"]
    keys = [brand.gtin + s for s in ("A3", "A1", "NOPE", "A2", "A1")]
    with stored["database"].reads() as uow:
        found = PostgresVerifierStore(uow).codes(keys)
    assert sorted(found) == sorted({brand.gtin + s for s in ("A1", "A2", "A3")})
    a1, a2, a3 = (found[brand.gtin + s] for s in ("A1", "A2", "A3"))
    assert (a1.state, a1.lot, a1.pin_hash, a1.market) == ("commissioned", "L-A1", None, None)
    assert (a2.state, a2.lot, a2.pin_hash, a2.market) == ("in_transit", "L-A2", b"\x01\x02", "DE")
    assert (a3.state, a3.lot, a3.market) == ("recalled", "L-A3", "FR-75")
    assert {c.tenant_id for c in found.values()} == {brand.tenant_id}
    assert a1.expiry == date(2030, 1, 31)
    with stored["database"].reads() as uow:
        assert PostgresVerifierStore(uow).codes([]) == {}
        facts = PostgresVerifierStore(uow).product(brand.gtin)
        assert PostgresVerifierStore(uow).product("09999999999999") is None
    assert facts is not None
    assert (facts.name, facts.brand) == ("batches product", "batches")


@pytest.mark.parametrize("plan", ["force_custom_plan", "force_generic_plan"])
def test_codes_reads_only_the_keys_asked_for(stored: dict[str, Any], plan: str) -> None:
    """Through the primary keys of the partitions holding the keys and no other (a generic
    plan of ``= ANY($1)`` probes all 16), with the plan made for these keys and with the
    generic plan the prepared statement settles on."""
    brand = stored["brand"]
    database: PostgresDatabase = stored["database"]
    with database.reads() as uow:
        uow.execute(f"SET LOCAL plan_cache_mode = {plan}")
        uow.execute("SET LOCAL enable_seqscan = off")
        store = PostgresVerifierStore(uow)
        for _ in range(3):  # past a fresh connection's first executions
            store.codes([brand.gtin + "A1", brand.gtin + "A2"])
        before = _codes_reads(uow)
        assert len(store.codes([brand.gtin + "A1", brand.gtin + "A2"])) == 2
        after = _codes_reads(uow)
    moved = {
        table: tuple(x - y for x, y in zip(after[table], before[table], strict=True))
        for table in after
    }
    assert sum(seq for seq, _, _ in moved.values()) == 0
    assert len([t for t, (_, searches, _) in moved.items() if searches]) <= 2  # their own
    assert sum(rows for _, _, rows in moved.values()) <= 2


def test_codes_refuses_more_keys_than_it_prepares_for(stored: dict[str, Any]) -> None:
    with stored["database"].reads() as uow, pytest.raises(ValueError, match="at most 16"):
        PostgresVerifierStore(uow).codes([f"{n:020d}" for n in range(MAX_CODES + 1)])


def _codes_reads(uow: Any) -> dict[str, tuple[int, int, int]]:
    """Per partition of codes: sequential scans, index searches, rows read."""
    rows = uow.execute(
        "SELECT relname, seq_scan, coalesce(idx_scan, 0), seq_tup_read + coalesce(idx_tup_fetch, 0)"
        " FROM pg_stat_xact_user_tables WHERE relname LIKE 'codes_p%%'"
    )
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def _calls(state: ScanState, n: int, tag: str) -> list[Call]:
    limits = Limits(f"batches-{tag}", 1_000_000, 1_000_000)
    return [
        state.record_call(f"{tag}-code-{i}", ClientContext(region="DE"), f"s-{i}", True, AT, limits)
        for i in range(n)
    ]


def test_scans_recorded_together_are_each_answered(redis_url: str, stored: dict[str, Any]) -> None:
    client = redis.Redis.from_url(redis_url)
    state = ScanState(RedisGate(client))
    tag = "together-" + stored["brand"].tenant_id
    calls = _calls(state, 5, tag)
    assert [r[0] for r in state.record_batch(calls)] == [b"miss"] * 5  # no state yet
    seeded = [(keys, [*args[:10], "1", "", "", "", "", ""]) for keys, args in calls]
    assert [r[0] for r in state.record_batch(seeded)] == [b"ok"] * 5
    again = state.record_batch(calls)
    assert [(r[0], int(r[6])) for r in again] == [(b"ok", 1)] * 5  # same session each
    assert all(int(r[1]) == int(AT.timestamp() * 1000) for r in again)  # first scan kept


def test_a_redis_that_lost_its_scripts_gets_them_again(
    redis_url: str, stored: dict[str, Any]
) -> None:
    client = redis.Redis.from_url(redis_url)
    state = ScanState(RedisGate(client))
    client.script_flush()
    replies = state.record_batch(_calls(state, 3, "flushed-" + stored["brand"].tenant_id))
    assert [r[0] for r in replies] == [b"miss"] * 3


def test_a_dropped_connection_is_reconnected_by_the_client(
    redis_url: str, stored: dict[str, Any]
) -> None:
    """The batch goes through the client's public pipeline, so its retry reconnects."""
    client = redis.Redis.from_url(redis_url)
    state = ScanState(RedisGate(client))
    calls = _calls(state, 2, "dropped-" + stored["brand"].tenant_id)
    assert [r[0] for r in state.record_batch(calls)] == [b"miss"] * 2
    client.client_kill_filter(_type="normal", skipme=True)
    assert [r[0] for r in state.record_batch(calls)] == [b"miss"] * 2


def test_a_server_that_is_away_fails_the_batch() -> None:
    """No server at all: the batch raises (ScanState then answers without Redis)."""
    state = ScanState(RedisGate(connect_redis("redis://127.0.0.1:1/0", None)))
    calls = [(["vs:{k}:0", "vss:{k}:0"], ["0", "s", "DE", "", "", "1", 1, 1, -1, 1, "0"])]
    with pytest.raises(redis.ConnectionError):
        state.record_batch(calls)


def test_record_through_a_batch_keeps_the_history(redis_url: str, stored: dict[str, Any]) -> None:
    """The public path: a serial unknown to Redis is seeded from the rebuild, then counted."""
    state = ScanState(RedisGate(redis.Redis.from_url(redis_url)))
    key = "history-" + stored["brand"].tenant_id
    limits = Limits("batches-history", 1_000_000, 1_000_000)
    earlier = datetime(2026, 11, 1, tzinfo=UTC)

    def rebuild(_: str) -> tuple[History, set[str]]:
        return History(first_at=earlier, first_region="FR"), {"old-session"}

    first, from_redis, refused = state.record(
        key, ClientContext(region="DE"), "new", True, AT, rebuild, limits
    )
    assert (from_redis, refused) == (True, "")
    assert (first.first_at, first.first_region, first.sessions) == (earlier, "FR", 2)
    second, _, _ = state.record(key, ClientContext(region="DE"), "third", True, AT, rebuild, limits)
    assert (second.first_at, second.sessions) == (earlier, 3)
