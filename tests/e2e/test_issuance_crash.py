"""Exactly once under crashes: SIGKILL the issuer mid-stream again and again, resume with the
same request id, and prove the codes received equal one uninterrupted run."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg2
import pytest

from sealmark.clock import SystemClock
from sealmark.storage.postgres import PostgresDatabase
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from tests.support.servers import IssuerProcess, issuer_env
from tests.support.tenants import seed_tenant

pytestmark = pytest.mark.e2e
TOTAL = 200_000
KILLS = 6


@pytest.fixture(scope="module")
def setup(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    db = PostgresDatabase(pg_dsn)
    clock = SystemClock()
    brand = seed_tenant(
        db.unit_of_work, clock, "crash", tokens={"line": ["line", "admin"]}, serial_length=14
    )
    gtin, line = brand.gtin, brand.tokens["line"]
    db.close()
    env = issuer_env(pg_dsn, redis_url, "crash")
    first = IssuerProcess(env)
    with grpc.insecure_channel(first.target) as channel:
        issuer_pb2_grpc.IssuerStub(channel).RotateKey(
            issuer_pb2.RotateKeyRequest(),
            metadata=[("authorization", f"Bearer {line}")],
            timeout=30,
        )
    first.kill()
    yield {"env": env, "token": line, "gtin": gtin, "dsn": pg_dsn}


def _stream(
    target: str, token: str, gtin: str, resume_from: int
) -> Iterator[issuer_pb2.IssuedCode]:
    channel = grpc.insecure_channel(target)
    try:
        stub = issuer_pb2_grpc.IssuerStub(channel)
        request = issuer_pb2.IssueCodesRequest(
            request_id="crash-run-1",
            gtin=gtin,
            lot="L1",
            expiry="301231",
            quantity=TOTAL,
            line_id="line-9",
            work_order="WO-crash",
            resume_from=resume_from,
            batch_size=1000,
        )
        for response in stub.IssueCodes(
            request, metadata=[("authorization", f"Bearer {token}")], timeout=300
        ):
            yield from response.codes
    finally:
        channel.close()


def test_sigkill_mid_stream_loses_and_duplicates_nothing(setup: dict[str, Any]) -> None:
    rng = random.Random(20261122)
    received: list[tuple[int, str, str, str]] = []
    kills = 0
    while len(received) < TOTAL:
        server = IssuerProcess(setup["env"])
        stop_after = rng.randrange(5_000, 35_000) if kills < KILLS else None
        got = 0
        try:
            for code in _stream(server.target, setup["token"], setup["gtin"], len(received)):
                assert code.index == len(received), "gap or repeat in the stream"
                received.append((code.index, code.serial, code.signature, code.pin))
                got += 1
                if stop_after is not None and got >= stop_after:
                    server.kill()
                    kills += 1
                    break
        except grpc.RpcError:
            kills += 1  # killed while a message was in flight: resume from what we have
        finally:
            server.close()
    assert kills >= 5
    assert len(received) == TOTAL
    assert len({serial for _, serial, _, _ in received}) == TOTAL

    # One uninterrupted replay of the same request id gives exactly what we received.
    server = IssuerProcess(setup["env"])
    try:
        replay = [
            (c.index, c.serial, c.signature, c.pin)
            for c in _stream(server.target, setup["token"], setup["gtin"], 0)
        ]
    finally:
        server.close()
    assert replay == received
    with psycopg2.connect(setup["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT serial), min(seq), max(seq) FROM codes"
            " WHERE request_id = 'crash-run-1'"
        )
        assert cur.fetchone() == (TOTAL, TOTAL, 0, TOTAL - 1)
