"""Random sequences of pack / unpack / replace / sample / ship against a simple reference model,
on a real PostgreSQL (hypothesis). After every step the stored hierarchy and states must equal
the model's: at most one parent per unit, no cycle, counts per parent and inherited states.

Each example works on units of its own (fresh serials and SSCCs), so examples never see each
other's data."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.domain import Level
from aggregator.postgres import PostgresAggregationStore
from aggregator.usecases import Aggregator
from audit.domain import RecallScope
from audit.postgres import PostgresAuditStore
from issuer.postgres_lines import PgLineStore
from sealmark.errors import SealmarkError
from sealmark.gs1 import make_sscc
from sealmark.storage.postgres import PostgresDatabase
from sealmark.tenancy.model import Principal, Role
from sealmark.units import UnitRef
from sealmark_app.root.aggregator import build_aggregator
from tests.e2e.conftest import make_container
from tests.support.tenants import seed_tenant

ITEMS, CASES, SPARES = 6, 3, 2
OUTCOMES: Counter[tuple[str, bool]] = Counter()
ACTIVE = {"commissioned", "received"}
REPLACEABLE = {"commissioned", "in_transit", "received"}


@pytest.fixture(scope="module")
def env(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, "model", tokens={})
    tenant_id, prefix, gtin = brand.tenant_id, brand.prefix, brand.gtin
    conn = psycopg2.connect(pg_dsn)
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO sscc_allocations (tenant_id, request_id, company_prefix,"
            " extension_digit, first_reference, quantity) VALUES (%s, 'model', %s, 5, 0, 100000)",
            (tenant_id, prefix),
        )
    yield {
        "aggregator": build_aggregator(container),
        "tenant": tenant_id,
        "gtin": gtin,
        "prefix": prefix,
        "conn": conn,
        "dsn": pg_dsn,
        "serials": itertools.count(),
        "boxes": itertools.count(),
        "events": itertools.count(),
    }
    conn.close()
    container.close()


@dataclass
class Model:
    """What the hierarchy and states must be."""

    parent: dict[str, str] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    market: dict[str, str] = field(default_factory=dict)
    level: dict[str, int] = field(default_factory=dict)
    boxes_known: set[str] = field(default_factory=set)  # SSCCs registered by a pack

    def children(self, key: str) -> list[str]:
        return [c for c, p in self.parent.items() if p == key]

    def below(self, key: str) -> list[str]:
        out, todo = [], self.children(key)
        while todo:
            out.extend(todo)
            todo = [c for k in todo for c in self.children(k)]
        return out

    def chain(self, key: str) -> list[str]:
        out = []
        while key in self.parent:
            key = self.parent[key]
            out.append(key)
        return out


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("pack"),
            st.integers(0, CASES),  # parent: a case, or the pallet (== CASES)
            # Mostly the children a line would pack there (items into a case, cases onto the
            # pallet); sometimes any unit at all, the wrong level included.
            st.tuples(
                st.booleans(),
                st.lists(st.integers(0, ITEMS + CASES - 1), min_size=1, max_size=4, unique=True),
            ),
        ),
        st.tuples(
            st.just("unpack"),
            st.integers(0, CASES),
            st.lists(st.integers(0, ITEMS + CASES - 1), max_size=1),  # often "everything"
        ),
        st.tuples(st.just("replace"), st.integers(0, ITEMS - 1), st.integers(0, SPARES - 1)),
        st.tuples(st.just("sample"), st.integers(0, ITEMS - 1), st.just(0)),
        st.tuples(st.just("ship"), st.integers(0, ITEMS + CASES), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)


def test_random_sequences_keep_the_hierarchy_equal_to_the_model(env: dict[str, Any]) -> None:
    OUTCOMES.clear()

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,  # the same sequences on every run: CI never flakes on a new draw
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(ops=OPS)
    def sequences(ops: list[tuple[Any, ...]]) -> None:
        _run(env, ops)

    sequences()
    # A model whose every call failed (or succeeded) would prove nothing.
    for op in ("pack", "unpack", "replace", "sample", "ship"):
        assert OUTCOMES[op, True] > 0, (op, OUTCOMES)
        assert OUTCOMES[op, False] > 0, (op, OUTCOMES)


def _run(env: dict[str, Any], ops: list[tuple[Any, ...]]) -> None:
    agg: Aggregator = env["aggregator"]
    gtin = env["gtin"]
    line = Principal(env["tenant"], frozenset({Role.LINE}), "line-token")
    logistics = Principal(env["tenant"], frozenset({Role.LOGISTICS}), "logistics-token")
    first = next(env["serials"]) * 100
    items = [UnitRef(gtin=gtin, serial=f"M{first + i:09d}") for i in range(ITEMS + SPARES)]
    spares, items = items[ITEMS:], items[:ITEMS]
    box0 = next(env["boxes"]) * 10
    boxes = [UnitRef(sscc=make_sscc(5, env["prefix"], box0 + n)) for n in range(CASES + 1)]
    cases, pallet = boxes[:CASES], boxes[CASES]
    with env["conn"], env["conn"].cursor() as cur:
        cur.execute(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, state)"
            " SELECT %s || s, %s, %s, s, 'L1', 'commissioned' FROM unnest(%s::text[]) s",
            (gtin, env["tenant"], gtin, [u.serial for u in items + spares]),
        )
    model = Model()
    for unit in items + spares:
        model.state[unit.key] = "commissioned"
        model.level[unit.key] = 1
    units = items + cases  # what ops index into as children
    levels = {b.key: (Level.PALLET if b is pallet else Level.CASE) for b in boxes}

    def event() -> str:
        return f"m-{next(env['events'])}"

    for op, a, b in ops:
        if op == "pack":
            parent = pallet if a == CASES else cases[a]
            anything, picks = b
            natural = cases if parent is pallet else items
            pool = units if anything else natural
            kids = list({pool[i % len(pool)].key: pool[i % len(pool)] for i in picks}.values())
            expect = _pack_ok(model, parent, kids, levels[parent.key])
            outcome = _try(agg.pack, line, event(), parent, kids, level=levels[parent.key])
            assert outcome == expect, (op, parent, kids, outcome)
            if expect:
                model.boxes_known.add(parent.key)
                model.state.setdefault(parent.key, "commissioned")
                model.level[parent.key] = levels[parent.key]
                for kid in kids:
                    model.parent[kid.key] = parent.key
        elif op == "unpack":
            parent = pallet if a == CASES else cases[a]
            kids = [units[i] for i in b]
            expect = parent.key in model.boxes_known and all(
                model.parent.get(k.key) == parent.key for k in kids
            )
            outcome = _try(agg.unpack, line, event(), parent, kids)
            assert outcome == expect, (op, parent, kids, outcome)
            if expect:
                for kid in kids or [UnitRef.of_key(k) for k in model.children(parent.key)]:
                    model.parent.pop(kid.key)
        elif op == "replace":
            old, new = items[a], spares[b]
            expect = (
                model.state[old.key] in REPLACEABLE
                and model.state[new.key] in {"allocated", "commissioned"}
                and new.key not in model.parent
                and not model.children(new.key)
            )
            outcome = _try(agg.replace, line, event(), old, new)
            assert outcome == expect, (op, old, new, outcome)
            if expect:
                if old.key in model.parent:
                    model.parent[new.key] = model.parent.pop(old.key)
                model.state[new.key] = model.state[old.key]
                if old.key in model.market:
                    model.market[new.key] = model.market[old.key]
                model.state[old.key] = "scrapped"
                items[a] = new  # the new label is the item from now on
                units[a] = new
                spares[b] = old  # a scrapped code: any later replacement with it must fail
        elif op == "sample":
            code = items[a]
            expect = model.state[code.key] in ACTIVE and not model.children(code.key)
            outcome = _try(agg.sample, line, event(), code)
            assert outcome == expect, (op, code, outcome)
            if expect:
                model.parent.pop(code.key, None)
                model.state[code.key] = "sampled"
        else:  # ship
            root = (items + boxes)[a]
            known = not root.is_sscc or root.key in model.boxes_known
            tree = [root.key, *model.below(root.key)]
            expect = known and all(model.state[k] in ACTIVE for k in tree)
            outcome = _try(agg.ship, logistics, event(), [root], "dc-1", "DE")
            assert outcome == expect, (op, root, outcome)
            if expect:
                for key in tree:
                    model.state[key] = "in_transit"
                    model.market[key] = "DE"
        _check(agg, line, model, items + spares + boxes)


def _pack_ok(model: Model, parent: UnitRef, kids: list[UnitRef], level: int) -> bool:
    if parent.key in model.boxes_known and model.state[parent.key] not in ACTIVE:
        return False
    for kid in kids:
        if kid.key == parent.key:
            return False
        if kid.is_sscc and kid.key not in model.boxes_known:
            return False  # an SSCC never packed is not a unit yet
        current = model.parent.get(kid.key)
        if current == parent.key:
            continue
        if current is not None or model.state[kid.key] not in ACTIVE:
            return False
        if model.level[kid.key] >= level:
            return False
        if kid.key in model.chain(parent.key):
            return False
    return True


def _try(call: Any, *args: Any, **kwargs: Any) -> bool:
    """True when the use case succeeded, False when it refused (any domain error)."""
    try:
        call(*args, **kwargs)
    except SealmarkError:
        OUTCOMES[call.__name__, False] += 1
        return False
    OUTCOMES[call.__name__, True] += 1
    return True


def _check(agg: Aggregator, who: Principal, model: Model, units: list[UnitRef]) -> None:
    for unit in units:
        if unit.is_sscc and unit.key not in model.boxes_known:
            continue
        chain = [u.key for u in agg.ancestors(who, unit)]
        assert chain == model.chain(unit.key), unit
        assert len(set(chain)) == len(chain) and unit.key not in chain  # no cycle
        if unit.key in model.boxes_known:
            per_level, direct = agg.counts(who, unit)
            assert direct == len(model.children(unit.key))
            assert sum(per_level.values()) == len(model.below(unit.key))
            pages = agg.children(who, unit, True)
            rows = [r for page, _ in pages for group in page for r in group.rows()]
            # States and markets here are containment's copies (migration 0008's triggers).
            assert {key: state for key, _, _, _, state, _ in rows} == {
                k: model.state[k] for k in model.below(unit.key)
            }
            assert {key: market or "" for key, _, _, _, _, market in rows} == {
                k: model.market.get(k, "") for k in model.below(unit.key)
            }


def test_state_changes_by_other_writers_reach_the_explosion(env: dict[str, Any]) -> None:
    """Containment keeps copies of state and market; a writer outside the Aggregator (a line
    report, a recall) changes codes or ssccs through its own adapter, which writes the copies
    in the same transaction (no trigger since migration 0018), so the explosion shows it."""
    agg: Aggregator = env["aggregator"]
    line = Principal(env["tenant"], frozenset({Role.LINE}), "line-token")
    gtin, first = env["gtin"], next(env["serials"]) * 100
    items = [UnitRef(gtin=gtin, serial=f"W{first + i:09d}") for i in range(4)]
    box0 = next(env["boxes"]) * 10
    case = UnitRef(sscc=make_sscc(5, env["prefix"], box0))
    pallet = UnitRef(sscc=make_sscc(5, env["prefix"], box0 + 1))
    with env["conn"], env["conn"].cursor() as cur:
        cur.execute(
            "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, state)"
            " SELECT %s || s, %s, %s, s, 'L1', 'commissioned' FROM unnest(%s::text[]) s",
            (gtin, env["tenant"], gtin, [u.serial for u in items]),
        )
    agg.pack(line, f"w-{first}-1", case, items, level=Level.CASE)
    agg.pack(line, f"w-{first}-2", pallet, [case], level=Level.PALLET)

    def seen() -> dict[str, tuple[str, str | None]]:
        pages = agg.children(line, pallet, True)
        rows = [r for page, _ in pages for group in page for r in group.rows()]
        return {key: (state, market) for key, _, _, _, state, market in rows}

    assert set(seen().values()) == {("commissioned", None)}
    at = datetime.now(UTC)
    database = PostgresDatabase(env["dsn"], pool_size=1)
    try:
        with database.unit_of_work() as uow:  # Audit's recall
            audit, scope = PostgresAuditStore(uow), RecallScope("codes", keys=(items[1].key,))
            audit.add_recall(f"rc-{first}", env["tenant"], f"rc-{first}", scope, "r", at, "t", "f")
            audit.recall_units(env["tenant"], scope, f"rc-{first}", at)
            uow.commit()
        with database.unit_of_work() as uow:  # the Issuer's line report
            PgLineStore(uow).set_state([items[3].key], "scrapped", at)
            uow.commit()
        with database.unit_of_work() as uow:  # the Aggregator's own writes
            store = PostgresAggregationStore(uow)
            store.set_state([items[2].key], "shipped", at, market="FR")
            store.set_state([case.key], "locked", at)
            uow.commit()
    finally:
        database.close()
    after = seen()
    assert after[items[1].key] == ("recalled", None)
    assert after[items[3].key] == ("scrapped", None)
    assert after[items[2].key] == ("shipped", "FR")
    assert after[case.key] == ("locked", None)
    assert after[items[0].key] == ("commissioned", None)
