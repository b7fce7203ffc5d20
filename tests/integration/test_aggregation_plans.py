"""How the aggregation statements reach the database: SSCCs through the primary key, never by
reading the table, and a packing write's locks in one call.

``ssccs.sscc`` is ``character(18)``. Compared with a ``text`` value, PostgreSQL casts the
column to text and can no longer use the key: every pallet explosion, SSCC lookup and shipment
of a case then read the whole table (one SSCC among a tenant's millions). Each check runs with
sequential scans disabled, so the planner takes the index whenever one can serve, and counts the
transaction's sequential scans of ``ssccs`` (``pg_stat_xact_user_tables``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.domain import Level, SsccRange
from aggregator.postgres import PostgresAggregationStore
from audit.domain import RecallScope
from audit.postgres import PostgresAuditStore
from sealmark.gs1 import make_sscc
from sealmark.storage.postgres import PostgresDatabase
from sealmark.tenancy.model import Principal, Role
from sealmark.units import UnitRef
from sealmark_app.root.aggregator import build_aggregator
from tests.e2e.conftest import make_container
from tests.support.tenants import seed_tenant

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OTHERS = 200  # SSCCs of the tenant besides the two used: what a full read would also read
MOST_ROWS = 10  # what a check may read of ssccs (its 1 - 2 SSCCs, a few times)


@pytest.fixture(scope="module")
def packed(pg_dsn: str, redis_url: str, pg_backend: str) -> Iterator[dict[str, Any]]:
    """A pallet holding a case holding three items, among other SSCCs of the tenant."""
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, "plans", tokens={})
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sscc_allocations (tenant_id, request_id, company_prefix,"
            " extension_digit, first_reference, quantity) VALUES (%s, 'plans', %s, 3, 0, 100)",
            (brand.tenant_id, brand.prefix),
        )
        cur.execute(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, state)"
            " SELECT %s || s, %s, %s, s, 'L1', 'commissioned' FROM unnest(%s::text[]) s",
            (brand.gtin, brand.tenant_id, brand.gtin, ["P1", "P2", "P3"]),
        )
        cur.execute(
            "INSERT INTO ssccs (sscc, tenant_id, level, state, created_at, updated_at)"
            " SELECT s, %s, 'case', 'commissioned', now(), now() FROM unnest(%s::text[]) s",
            (brand.tenant_id, [make_sscc(3, brand.prefix, 10 + n) for n in range(OTHERS)]),
        )
    conn.close()
    case, pallet = (UnitRef(sscc=make_sscc(3, brand.prefix, n)) for n in (1, 2))
    items = [UnitRef(gtin=brand.gtin, serial=s) for s in ("P1", "P2", "P3")]
    line = Principal(brand.tenant_id, frozenset({Role.LINE}), "plans-line")
    aggregator = build_aggregator(container)
    aggregator.pack(line, "plans-case", case, items, level=Level.CASE)
    aggregator.pack(line, "plans-pallet", pallet, [case], level=Level.PALLET)
    yield {
        "tenant": brand.tenant_id,
        "case": case,
        "pallet": pallet,
        "item": items[0],
        "database": PostgresDatabase(pg_dsn, pool_size=1),
        "backend": pg_backend,
    }
    container.close()


def _ssccs_read_whole(packed: dict[str, Any], run: Callable[[Any], object]) -> bool:
    """Whether ``run(uow)`` read ``ssccs`` whole (a sequential scan, or more rows than the few
    it asks for), with sequential scans disabled, in a transaction rolled back afterwards."""
    database: PostgresDatabase = packed["database"]
    stats = (
        "SELECT coalesce(sum(seq_scan), 0), coalesce(sum(seq_tup_read + idx_tup_fetch), 0)"
        " FROM pg_stat_xact_user_tables WHERE relname ~ '^ssccs(_[0-9]+)?$'"  # _n: a Citus shard
    )
    with database.unit_of_work() as uow:
        uow.execute("SET LOCAL enable_seqscan = off")
        # On Citus, ssccs is a reference table read through its shard (ssccs_<n>), which
        # catalog views hide unless asked (a custom setting, harmless without Citus).
        uow.execute("SET LOCAL citus.show_shards_for_app_name_prefixes = '*'")
        scans, rows = uow.execute(stats)[0]
        run(uow)
        scans_after, rows_after = uow.execute(stats)[0]
        uow.rollback()
    if packed["backend"] == "citus" and rows_after == rows:
        pytest.skip(
            "on Citus this statement read the reference table ssccs on a worker's placement"
            " (routed with a co-located shard), whose statistics this transaction cannot see"
        )
    assert rows_after - rows > 0, "the check saw no read of ssccs at all"
    return bool(scans_after > scans or rows_after - rows > MOST_ROWS)


@pytest.mark.parametrize("lock", [False, True])
def test_units_of_ssccs_use_the_key(packed: dict[str, Any], lock: bool) -> None:
    keys = [packed["case"].key, packed["pallet"].key]

    def run(uow: Any) -> None:
        assert set(PostgresAggregationStore(uow).units(packed["tenant"], keys, lock=lock)) == set(
            keys
        )

    assert not _ssccs_read_whole(packed, run)


def test_state_of_ssccs_uses_the_key(packed: dict[str, Any]) -> None:
    def run(uow: Any) -> None:
        PostgresAggregationStore(uow).set_state([packed["case"].key], "in_transit", AT, "CN")
        assert uow.execute(
            "SELECT state, market FROM ssccs WHERE sscc = %s", (packed["case"].sscc,)
        ) == [("in_transit", "CN")]

    assert not _ssccs_read_whole(packed, run)


def test_ancestors_of_an_sscc_use_the_key(packed: dict[str, Any]) -> None:
    def run(uow: Any) -> None:
        chain = PostgresAggregationStore(uow).owned_ancestors(packed["tenant"], packed["case"].key)
        assert chain == [packed["pallet"].key]

    assert not _ssccs_read_whole(packed, run)


def test_pallet_explosion_uses_the_key(packed: dict[str, Any]) -> None:
    def run(uow: Any) -> None:
        groups = PostgresAggregationStore(uow).descendant_groups(
            packed["tenant"], packed["pallet"].key, True, None, 100
        )
        assert [(g.depth, g.parent, g.count) for g in groups] == [
            (1, packed["pallet"].key, 1),
            (2, packed["case"].key, 3),
        ]

    assert not _ssccs_read_whole(packed, run)


def test_recall_of_a_parent_uses_the_key(packed: dict[str, Any]) -> None:
    scope = RecallScope("parent", keys=(packed["pallet"].key,))

    def run(uow: Any) -> None:
        audit = PostgresAuditStore(uow)
        audit.add_recall("plans-recall", packed["tenant"], "plans", scope, "test", AT, "t", "f")
        assert audit.recall_units(packed["tenant"], scope, "plans-recall", AT) == 3
        assert uow.execute(
            "SELECT count(*) FROM ssccs WHERE state = 'recalled' AND sscc IN (%s, %s)",
            (packed["case"].sscc, packed["pallet"].sscc),
        ) == [(2,)]

    assert not _ssccs_read_whole(packed, run)


def test_lock_chain_locks_the_units_and_everything_above(
    packed: dict[str, Any], pg_dsn: str
) -> None:
    """One call locks the head, the others and the chain above the head, and returns the
    chain nearest first; another transaction can then take none of those locks."""
    item, case, pallet = packed["item"].key, packed["case"].key, packed["pallet"].key
    other = packed["item"].gtin + "P3"
    database: PostgresDatabase = packed["database"]
    with database.unit_of_work() as uow:
        assert PostgresAggregationStore(uow).lock_chain(item, [other]) == [case, pallet]
        with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
            free = {}
            for key in (item, other, case, pallet, "sscc:000000000000000000"):
                cur.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
                free[key] = cur.fetchone()[0]
        conn.close()
        uow.rollback()
    assert free == {
        item: False,
        other: False,
        case: False,
        pallet: False,
        "sscc:000000000000000000": True,
    }
    with database.unit_of_work() as uow:
        assert PostgresAggregationStore(uow).lock_chain(pallet, []) == []


ranges = st.builds(
    SsccRange,
    st.integers(0, 9),
    st.sampled_from(["9526000", "95260001", "952600"]),
    st.integers(0, 10**8),
    st.integers(1, 1000),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    allocated=ranges,
    ext=st.none() | st.integers(0, 9),  # None: the range's own
    prefix=st.none() | st.sampled_from(["9526000", "95260001"]),
    offset=st.integers(-3, 1003),
)
def test_a_range_holds_what_the_database_finds_in_it(
    packed: dict[str, Any],
    allocated: SsccRange,
    ext: int | None,
    prefix: str | None,
    offset: int,
) -> None:
    """The Aggregator keeps the ranges it found and checks later SSCCs against them in memory:
    that check must agree with the database's."""
    ext = allocated.extension_digit if ext is None else ext
    prefix = allocated.company_prefix if prefix is None else prefix
    reference = max(0, allocated.first + offset) % 10 ** (16 - len(prefix))
    sscc = make_sscc(ext, prefix, reference)
    database: PostgresDatabase = packed["database"]
    with database.unit_of_work() as uow:
        uow.execute("DELETE FROM sscc_allocations WHERE tenant_id = %s", (packed["tenant"],))
        uow.execute(
            "INSERT INTO sscc_allocations (tenant_id, request_id, company_prefix,"
            " extension_digit, first_reference, quantity) VALUES (%s, 'r', %s, %s, %s, %s)",
            (
                packed["tenant"],
                allocated.company_prefix,
                allocated.extension_digit,
                allocated.first,
                allocated.quantity,
            ),
        )
        found = PostgresAggregationStore(uow).sscc_range(packed["tenant"], sscc)
        uow.rollback()
    assert (found is not None) == allocated.holds(sscc)
    assert found in (None, allocated)
