"""Serial collisions against stored codes, on a real PostgreSQL.

At the EU FMD bound about one draw in 10^4 hits a stored serial, too rarely to reach in a test
by chance. Here the Issuer's random source is replayed, so a second request draws exactly the
serials of the first: every one collides, the direct COPY fails on the unique key, and the
staging path must find the collisions and redraw them without losing or doubling a code.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from issuer.domain.commands import IssueCommand
from issuer.usecases import Issuer
from sealmark.storage.postgres import PostgresDatabase
from sealmark.tenancy.model import Principal, Role
from sealmark_app.root.issuer import build_issuer
from tests.e2e.conftest import make_container
from tests.support.tenants import seed_tenant


class ReplayableRandom:
    """A seeded byte stream that can be rewound to its start."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(seed)

    def __call__(self, n: int) -> bytes:
        return self._rng.randbytes(n)

    def rewind(self) -> None:
        self._rng = random.Random(self._seed)


@pytest.fixture()
def replay(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    source = ReplayableRandom(20261123)
    # Minting in this process, so the injected source is the one used.
    container = make_container(pg_dsn, redis_url, source, SEALMARK_MINT_PROCESSES="0")
    brand = seed_tenant(container.uow, container.clock, "col", tokens={})
    issuer = build_issuer(container)
    issuer.rotate_key(brand.tenant_id)
    yield {
        "issuer": issuer,
        "source": source,
        "gtin": brand.gtin,
        "tenant": brand.tenant_id,
        "db": pg_dsn,
    }
    container.close()


def _issue(issuer: Issuer, tenant: str, gtin: str, request_id: str, quantity: int) -> list[str]:
    principal = Principal(tenant, frozenset({Role.LINE}))
    command = IssueCommand(request_id, gtin, "LOT1", "301231", quantity, "L1", "WO1")
    return [code.serial for batch in issuer.issue(principal, command) for code in batch.codes]


def _stored(dsn: str, tenant: str, request_id: str) -> list[tuple[int, str]]:
    db = PostgresDatabase(dsn)
    try:
        with db.unit_of_work() as uow:
            rows = uow.execute(
                "SELECT seq, serial FROM codes WHERE tenant_id = %s AND request_id = %s"
                " ORDER BY seq",
                (tenant, request_id),
            )
        return [(int(seq), serial) for seq, serial in rows]
    finally:
        db.close()


def test_a_request_whose_every_draw_collides_redraws_them_all(replay: dict[str, Any]) -> None:
    issuer, source, gtin, tenant = (replay[k] for k in ("issuer", "source", "gtin", "tenant"))
    first = _issue(issuer, tenant, gtin, "first", 7_000)  # two chunks
    source.rewind()
    second = _issue(issuer, tenant, gtin, "second", 7_000)

    assert len(set(first)) == len(first) == 7_000
    assert len(set(second)) == len(second) == 7_000
    assert not set(first) & set(second), "a serial went to two requests"
    stored_second = _stored(replay["db"], tenant, "second")
    assert stored_second == list(enumerate(second)), "streamed codes differ from stored ones"
    assert [serial for _, serial in _stored(replay["db"], tenant, "first")] == first


def test_a_retry_after_collisions_returns_the_same_codes(replay: dict[str, Any]) -> None:
    issuer, source, gtin, tenant = (replay[k] for k in ("issuer", "source", "gtin", "tenant"))
    _issue(issuer, tenant, gtin, "base", 300)
    source.rewind()
    redrawn = _issue(issuer, tenant, gtin, "again", 300)
    source.rewind()  # a retry draws nothing: the stored codes are read back
    assert _issue(issuer, tenant, gtin, "again", 300) == redrawn
