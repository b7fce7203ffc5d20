"""A minting worker of a real issuer SIGKILLed mid-chunk, again and again: the stream goes on
(the chunk is minted again in a fresh pool) or fails cleanly and resumes; either way nothing is
half-written, no serial is repeated, every code verifies offline, and a replay of the request
gives exactly what the line received."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealmark.clock import SystemClock
from sealmark.crypto.signature import canonical_bytes, decode_ai8030
from sealmark.storage.postgres import PostgresDatabase
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from tests.support.servers import IssuerProcess, issuer_env
from tests.support.tenants import seed_tenant

pytestmark = pytest.mark.e2e
TOTAL = 60_000
KILLS = 4


def _minting_workers(server_pid: int) -> list[int]:
    kids = []
    for tid in os.listdir(f"/proc/{server_pid}/task"):
        try:
            found = Path(f"/proc/{server_pid}/task/{tid}/children").read_text().split()
        except FileNotFoundError:
            continue
        for kid in found:
            try:
                if b"spawn_main" in Path(f"/proc/{kid}/cmdline").read_bytes():
                    kids.append(int(kid))
            except FileNotFoundError:
                continue
    return kids


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "R"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def server(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    db = PostgresDatabase(pg_dsn)
    tokens = {"line": ["line", "admin"]}
    brand = seed_tenant(db.unit_of_work, SystemClock(), "workers", tokens=tokens)
    db.close()
    env = issuer_env(pg_dsn, redis_url, "workers", SEALMARK_MINT_PROCESSES="2")
    proc = IssuerProcess(env)
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = issuer_pb2_grpc.IssuerStub(channel)
            md = [("authorization", f"Bearer {brand.tokens['line']}")]
            stub.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=md, timeout=30)
            keys = {
                k.key_id: k.public_key
                for k in stub.GetKeySet(issuer_pb2.GetKeySetRequest(), metadata=md, timeout=5).keys
            }
        yield {
            "proc": proc,
            "token": brand.tokens["line"],
            "gtin": brand.gtin,
            "dsn": pg_dsn,
            "keys": keys,
        }
    finally:
        proc.close()


def _stream(world: dict[str, Any], resume_from: int) -> Iterator[issuer_pb2.IssuedCode]:
    with grpc.insecure_channel(world["proc"].target) as channel:
        request = issuer_pb2.IssueCodesRequest(
            request_id="workers-run-1",
            gtin=world["gtin"],
            lot="L1",
            expiry="301231",
            quantity=TOTAL,
            line_id="line-1",
            work_order="WO-workers",
            resume_from=resume_from,
            batch_size=1000,
        )
        metadata = [("authorization", f"Bearer {world['token']}")]
        for response in issuer_pb2_grpc.IssuerStub(channel).IssueCodes(
            request, metadata=metadata, timeout=300
        ):
            yield from response.codes


def test_workers_killed_mid_chunk_lose_and_duplicate_nothing(server: dict[str, Any]) -> None:
    pid = server["proc"].proc.pid
    killed: list[int] = []
    done = threading.Event()

    def kill_busy_workers() -> None:
        """SIGKILL a worker caught minting, then wait for the replacement pool to mint."""
        while not done.is_set() and len(killed) < KILLS:
            busy = [w for w in _minting_workers(pid) if w not in killed and _running(w)]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                time.sleep(0.3)
            time.sleep(0.002)

    received: list[tuple[int, str, str, str]] = []
    failures: list[grpc.StatusCode] = []
    killer = threading.Thread(target=kill_busy_workers)
    killer.start()
    try:
        while len(received) < TOTAL:
            try:
                for code in _stream(server, len(received)):
                    assert code.index == len(received), "gap or repeat in the stream"
                    received.append((code.index, code.serial, code.signature, code.pin))
            except grpc.RpcError as exc:
                failures.append(exc.code())
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
                assert len(failures) < 20
    finally:
        done.set()
        killer.join()

    assert len(killed) >= 2, "no worker was caught minting"
    assert len(received) == TOTAL
    assert len({serial for _, serial, _, _ in received}) == TOTAL
    for _, serial, value, _ in received[::301]:
        key_id, signature = decode_ai8030(value)
        message = canonical_bytes(server["gtin"], serial, "L1", "301231", key_id)
        Ed25519PublicKey.from_public_bytes(server["keys"][key_id]).verify(signature, message)

    replay = [(c.index, c.serial, c.signature, c.pin) for c in _stream(server, 0)]
    assert replay == received
    with psycopg2.connect(server["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT serial), min(seq), max(seq) FROM codes"
            " WHERE request_id = 'workers-run-1'"
        )
        assert cur.fetchone() == (TOTAL, TOTAL, 0, TOTAL - 1)
        cur.execute(
            "SELECT generated, quantity FROM issue_requests WHERE request_id = 'workers-run-1'"
        )
        assert cur.fetchone() == (TOTAL, TOTAL)
    # The server kept serving with a fresh pool: the same number of workers, none of the dead.
    alive = _minting_workers(pid)
    assert len(alive) == 2 and not set(alive) & set(killed)
