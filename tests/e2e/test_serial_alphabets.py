"""Issue 25 through the real path: IssueCodes for every serial alphabet, on each way a code
is signed (software key in the minting worker processes, software key in the serving process,
a key inside a PKCS#11 token), then the symbols of every serial counted. Every symbol must be
one of the product's declared alphabet and their frequencies uniform (chi-square, false-alarm
rate 1e-6 per check: tests/support/uniformity.py); GetSerialReport must state the space that
is really drawn from. Then the serial-exposure report on serials marked as minted before the
fix, and the marker itself across migration 0014."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg2
import pytest

from sealmark.clock import SystemClock
from sealmark.server.app import create_server
from sealmark.storage.migrate import apply_migrations, load_migrations
from sealmark.tenancy import usecases
from sealmark.tenancy.alphabets import SERIAL_ALPHABETS
from sealmark.v1 import audit_pb2, audit_pb2_grpc, issuer_pb2, issuer_pb2_grpc
from sealmark_app.root import binding_for
from tests.e2e.conftest import _md, make_container
from tests.e2e.test_issuance_pkcs11 import _softhsm, hsm_env
from tests.pg_fixtures import create_database, drop_database
from tests.storage_contract import gtin_under
from tests.support.servers import IssuerProcess
from tests.support.tenants import Brand, seed_tenant
from tests.support.uniformity import assert_uniform

pytestmark = pytest.mark.e2e
NAMES = sorted(SERIAL_ALPHABETS)
LENGTH = 12
QUANTITY = 2_000  # 24,000 symbols per alphabet: at least 428 expected in each bin


@pytest.fixture(scope="module")
def brand(pg_dsn: str, redis_url: str) -> Iterator[tuple[Brand, dict[str, str]]]:
    """A tenant with one product per alphabet (GTIN by alphabet name)."""
    container = make_container(pg_dsn, redis_url, SEALMARK_MINT_PROCESSES="0")
    tokens = {"admin": ["admin"], "auditor": ["auditor"]}
    seeded = seed_tenant(container.uow, container.clock, "alpha", tokens=tokens)
    gtins = {}
    for i, name in enumerate(NAMES):
        gtins[name] = gtin_under(seeded.prefix + str(i + 1))
        usecases.add_product(
            container.uow,
            container.clock,
            tenant_id=seeded.tenant_id,
            gtin=gtins[name],
            name=f"{name} product",
            serial_alphabet=name,
            serial_length=LENGTH,
        )
    container.close()
    yield seeded, gtins


def _issue(stub: issuer_pb2_grpc.IssuerStub, token: str, gtin: str, request_id: str) -> list[str]:
    request = issuer_pb2.IssueCodesRequest(
        request_id=request_id,
        gtin=gtin,
        lot="ALPHA-1",
        expiry="301231",
        quantity=QUANTITY,
        line_id="line-a",
        work_order="WO-a",
    )
    responses = stub.IssueCodes(request, metadata=_md(token), timeout=120)
    return [code.serial for response in responses for code in response.codes]


def _check_all_alphabets(
    stub: issuer_pb2_grpc.IssuerStub, brand: Brand, gtins: dict[str, str], path: str
) -> None:
    token = brand.tokens["admin"]
    stub.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(token), timeout=30)
    for name in NAMES:
        alphabet = SERIAL_ALPHABETS[name]
        before = _stats(stub, token, gtins[name]).serials_issued
        serials = _issue(stub, token, gtins[name], f"{path}-{name}")
        assert len(serials) == len(set(serials)) == QUANTITY
        assert {len(s) for s in serials} == {LENGTH}
        assert_uniform(serials, alphabet.symbols)  # fails first on any symbol outside the set
        stats = _stats(stub, token, gtins[name])
        assert stats.serial_alphabet == name
        assert stats.serial_space == float(len(alphabet.symbols) ** LENGTH)
        assert stats.serials_issued == before + QUANTITY
        assert stats.guess_probability == pytest.approx(stats.serials_issued / stats.serial_space)


def _stats(stub: issuer_pb2_grpc.IssuerStub, token: str, gtin: str) -> Any:
    report = stub.GetSerialReport(
        issuer_pb2.GetSerialReportRequest(gtin=gtin), metadata=_md(token), timeout=10
    )
    (stats,) = report.products
    return stats


@pytest.mark.parametrize("processes", ["2", "0"], ids=["worker-processes", "in-process"])
def test_software_keys_draw_from_the_declared_alphabet(
    pg_dsn: str, redis_url: str, brand: tuple[Brand, dict[str, str]], processes: str
) -> None:
    seeded, gtins = brand
    container = make_container(pg_dsn, redis_url, SEALMARK_MINT_PROCESSES=processes)
    running = create_server([binding_for("issuer", container)], container.authenticator)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            _check_all_alphabets(issuer_pb2_grpc.IssuerStub(channel), seeded, gtins, processes)
            # The path under test is the one taken: worker processes exist only with "2".
            assert bool(multiprocessing.active_children()) == (processes != "0")
    finally:
        running.stop(0)
        container.close()


def test_token_keys_draw_from_the_declared_alphabet(
    pg_dsn: str,
    redis_url: str,
    brand: tuple[Brand, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    seeded, gtins = brand
    module, conf = _softhsm(tmp_path_factory.mktemp("softhsm-alphabets"))
    env = hsm_env(pg_dsn, redis_url, module, conf)
    server = IssuerProcess(env)
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = issuer_pb2_grpc.IssuerStub(channel)
            _check_all_alphabets(stub, seeded, gtins, "token")
            keys = stub.GetKeySet(
                issuer_pb2.GetKeySetRequest(), metadata=_md(seeded.tokens["admin"])
            )
    finally:
        server.close()
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT backend FROM signing_keys s JOIN codes c"
            " ON c.tenant_id = s.tenant_id AND c.key_id = s.key_id"
            " WHERE c.tenant_id = %s AND c.request_id LIKE 'token-%%'",
            (seeded.tenant_id,),
        )
        assert cur.fetchall() == [("pkcs11",)]
    conn.close()
    assert keys.keys


def test_serial_exposure_report_states_the_legacy_population(
    pg_dsn: str, redis_url: str, brand: tuple[Brand, dict[str, str]], tmp_path: Path
) -> None:
    """Codes minted before the fix carry serial_scheme 1 (migration 0014); here a part of the
    numeric product's codes is marked so, as an upgraded database would have them."""
    seeded, gtins = brand
    container = make_container(pg_dsn, redis_url, SEALMARK_MINT_PROCESSES="0")
    running = create_server(
        [binding_for(n, container) for n in ("issuer", "audit")], container.authenticator
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            issuer = issuer_pb2_grpc.IssuerStub(channel)
            issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(seeded.tokens["admin"]))
            _issue(issuer, seeded.tokens["admin"], gtins["numeric"], "exposure-numeric")
            with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
                cur.execute(
                    "UPDATE codes SET serial_scheme = 1 WHERE code_key IN (SELECT code_key"
                    " FROM codes WHERE tenant_id = %s AND gtin = %s ORDER BY seq LIMIT 500)",
                    (seeded.tenant_id, gtins["numeric"]),
                )
                cur.execute(
                    "SELECT count(*) FROM codes WHERE tenant_id = %s AND gtin = %s",
                    (seeded.tenant_id, gtins["numeric"]),
                )
                (issued,) = cur.fetchone()
            conn.close()
            audit = audit_pb2_grpc.AuditStub(channel)
            request = audit_pb2.ReportRequest(kind=audit_pb2.REPORT_KIND_SERIAL_EXPOSURE)
            auditor = _md(seeded.tokens["auditor"])
            data = b"".join(c.data for c in audit.GetReport(request, metadata=auditor))
            chart = audit_pb2.ReportRequest(
                kind=audit_pb2.REPORT_KIND_SERIAL_EXPOSURE, format=audit_pb2.REPORT_FORMAT_SVG
            )
            with pytest.raises(grpc.RpcError) as refused:
                b"".join(c.data for c in audit.GetReport(chart, metadata=auditor))
    finally:
        running.stop(0)
        container.close()

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tabular" in (refused.value.details() or "")
    report = json.loads(data)
    rows = {row["gtin"]: row for row in report["rows"]}
    assert set(rows) == {*gtins.values(), seeded.gtin}  # seed_tenant's own product too
    numeric = rows[gtins["numeric"]]
    assert numeric["serials_issued"] == issued
    assert numeric["serial_space"] == 10**LENGTH
    assert numeric["legacy_serials"] == 500
    assert numeric["legacy_symbols"] == "ceimnru"
    assert numeric["legacy_reachable_space"] == 7**LENGTH
    assert numeric["legacy_uniform_guess_probability"] == pytest.approx(500 / 7**LENGTH)
    assert numeric["guess_probability_real"] == pytest.approx(
        max(issued / 10**LENGTH, 500 / 7**LENGTH)
    )
    for gtin in set(rows) - {gtins["numeric"]}:
        row = rows[gtin]
        assert row["legacy_serials"] == 0
        assert row["guess_probability_real"] == pytest.approx(row["guess_probability_declared"])


def test_migration_0014_marks_existing_codes_legacy_and_new_ones_fixed(pg_admin_dsn: str) -> None:
    dsn = create_database(pg_admin_dsn, migrate=False)
    try:
        migrations = load_migrations()
        assert migrations[-1].version >= 14
        apply_migrations(dsn, [m for m in migrations if m.version < 14])
        clock = SystemClock()
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO tenants (id, name, resolver_host, created_at)"
                " VALUES ('old', 'Old', 'id.old.example', %s)",
                (clock.now(),),
            )
            cur.execute(
                "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, state) VALUES"
                " ('09520123456788rrrnnrnnemiu', 'old', '09520123456788', 'rrrnnrnnemiu',"
                " 'L', 'commissioned')"
            )
        apply_migrations(dsn, migrations)
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO codes (code_key, tenant_id, gtin, serial, lot, state) VALUES"
                " ('09520123456788012345678901', 'old', '09520123456788', '012345678901',"
                " 'L', 'commissioned')"
            )
            cur.execute("SELECT serial, serial_scheme FROM codes ORDER BY serial")
            assert cur.fetchall() == [("012345678901", 2), ("rrrnnrnnemiu", 1)]
        conn.close()
    finally:
        drop_database(pg_admin_dsn, dsn)
