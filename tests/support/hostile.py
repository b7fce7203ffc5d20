"""A brand with real resources behind all four services on one real server, for the tests
that throw hostile input at it (tests/e2e/test_fuzz_rpcs.py, test_hostile_operations.py,
test_stream_cancel.py): issued and commissioned codes, an SSCC, tokens of every role, and
what it takes to check that the brand's data still exports as valid EPCIS 2.0."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import grpc
import psycopg2

from sealmark.server.app import RunningServer, create_server
from sealmark.v1 import (
    aggregator_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    issuer_pb2,
    issuer_pb2_grpc,
)
from sealmark_app.root import binding_for
from sealmark_app.root.container import Container
from sealmark_app.root.verifier import build_verifier
from tests.e2e.conftest import _md, make_container
from tests.support.epcis_schema import VALIDATOR
from tests.support.tenants import Brand, seed_tenant
from verifier.domain import Rules

ROLES = {
    "line": ["line"],
    "logistics": ["logistics"],
    "auditor": ["auditor"],
    "admin": ["admin"],
}
SERVICES = ("issuer", "aggregator", "verifier", "audit")


def fresh_id(prefix: str) -> str:
    return f"{prefix}-{os.urandom(6).hex()}"


@dataclass
class HostileWorld:
    container: Container
    running: RunningServer
    channel: grpc.Channel
    brand: Brand
    lot: str
    serials: list[str]
    links: list[str]
    ssccs: list[str]
    dsn: str
    stubs: dict[str, Any] = field(default_factory=dict)

    def md(self, role: str = "admin") -> list[tuple[str, str]]:
        return _md(self.brand.tokens[role])

    def close(self) -> None:
        self.channel.close()
        self.running.stop(0)
        self.container.close()

    def export(self) -> dict[str, Any]:
        """The brand's whole EPCIS export, checked against the EPCIS 2.0 schema."""
        chunks = self.stubs["audit"].ExportEpcis(
            audit_pb2.ExportEpcisRequest(), metadata=self.md("auditor"), timeout=120
        )
        document: dict[str, Any] = json.loads(b"".join(c.data for c in chunks))
        errors = sorted(VALIDATOR.iter_errors(document), key=str)
        assert not errors, "export breaks the EPCIS 2.0 schema:\n" + "\n".join(
            f"{list(e.absolute_path)}: {e.message}" for e in errors[:10]
        )
        return document

    def busy_sessions(self) -> list[tuple[str, str]]:
        """The server's database sessions that are inside a transaction or a statement."""
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT state, left(query, 80) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'sealmark'"
                " AND state <> 'idle'"
            )
            rows = [(str(r[0]), str(r[1])) for r in cur.fetchall()]
        conn.close()
        return rows


def start_world(pg_dsn: str, redis_url: str, slug: str, codes: int = 24) -> HostileWorld:
    """A server with every service, and a brand with ``codes`` commissioned codes of one lot
    and twelve SSCCs."""
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, slug, tokens=ROLES)
    build_verifier(container).set_rules(
        brand.tenant_id, Rules(rate_per_minute=100_000, guess_limit=100_000)
    )
    running = create_server([binding_for(n, container) for n in SERVICES], container.authenticator)
    channel = grpc.insecure_channel(
        f"127.0.0.1:{running.port}",
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
    )
    stubs: dict[str, Any] = {
        "issuer": issuer_pb2_grpc.IssuerStub(channel),
        "aggregator": aggregator_pb2_grpc.AggregatorStub(channel),
        "audit": audit_pb2_grpc.AuditStub(channel),
    }
    admin = _md(brand.tokens["admin"])
    stubs["issuer"].RotateKey(issuer_pb2.RotateKeyRequest(), metadata=admin, timeout=10)
    lot = "LOT-" + os.urandom(2).hex().upper()
    responses = stubs["issuer"].IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id=fresh_id("r"),
            gtin=brand.gtin,
            lot=lot,
            expiry="301231",
            quantity=codes,
            line_id="line-1",
            work_order="WO-1",
        ),
        metadata=admin,
        timeout=60,
    )
    issued = [c for r in responses for c in r.codes]
    serials = [c.serial for c in issued]
    acks = list(
        stubs["issuer"].ReportCommissioned(
            iter([issuer_pb2.CodeBatch(batch_id=fresh_id("c"), gtin=brand.gtin, serials=serials)]),
            metadata=admin,
            timeout=30,
        )
    )
    assert acks[0].accepted == codes
    ssccs = list(
        stubs["issuer"]
        .AllocateSsccs(
            issuer_pb2.AllocateSsccsRequest(
                request_id=fresh_id("s"), company_prefix=brand.prefix, quantity=12
            ),
            metadata=admin,
            timeout=10,
        )
        .ssccs
    )
    return HostileWorld(
        container,
        running,
        channel,
        brand,
        lot,
        serials,
        [c.digital_link for c in issued],
        ssccs,
        pg_dsn,
        stubs,
    )
