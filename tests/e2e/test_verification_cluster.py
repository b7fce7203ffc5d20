"""Verification end to end on a real Redis Cluster (3 masters, 3 replicas): scan counts, rate
limits and the alert stream through a cluster client, and a master killed mid-traffic whose
replica takes over, with no restart of the Verifier and no scan lost."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psycopg2
import pytest

from sealmark.clock import FixedClock
from sealmark_app.root.verifier import build_verifier
from tests.e2e.test_verification import _issue, _start, _stop, _verify
from tests.support.redis_cluster import RedisClusterServers, redis_cluster
from verifier.domain import Rules

pytestmark = pytest.mark.e2e
Code = grpc.StatusCode
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_scans_limits_and_alerts_go_through_a_cluster(
    pg_dsn: str, redis_url: str, redis_cluster_servers: RedisClusterServers
) -> None:
    world = _start(
        pg_dsn, redis_url, FixedClock(AT), SEALMARK_REDIS_CLUSTER_NODES=redis_cluster_servers.seeds
    )
    try:
        verifier, tenant = build_verifier(world["container"]), world["brand"].tenant_id
        codes = _issue(world, 4)  # their serials' keys land on different masters
        for session in ("a", "b", "c"):
            world["clock"].advance(minutes=1)
            for code in codes:
                answer = _verify(world, code.digital_link, session=session, region="DE")
                assert not answer.degraded, answer
                assert answer.session_count == "abc".index(session) + 1
        assert verifier.health() == {"status": "ok", "redis": "up", "postgres": "up"}

        verifier.set_rules(tenant, Rules(rate_per_minute=1000, guess_limit=4))
        refused = 0
        for n in range(8):
            try:
                _verify(world, codes[0].digital_link, pin=f"{n:06d}", session="g")
            except grpc.RpcError as exc:
                assert exc.code() == Code.RESOURCE_EXHAUSTED, exc
                refused += 1
        assert refused >= 3  # the guess counter lives in the cluster
        stream = world["container"].redis.xrange(f"alerts:{tenant}")
        assert any(f[b"kind"] == b"serial_guessing" for _, f in stream), stream

        verifier.set_rules(tenant, Rules(rate_per_minute=5, guess_limit=100_000))
        for _ in range(3):
            minute = int(time.time() // 60)
            answers = []
            for n in range(8):
                try:
                    answers.append(_verify(world, codes[1].digital_link, session=f"r{n}"))
                except grpc.RpcError as exc:
                    assert exc.code() == Code.RESOURCE_EXHAUSTED, exc
                    answers.append(None)
            if int(time.time() // 60) == minute:
                break
        # the guessing client is this one too; it was refused for 8 already this minute
        assert answers[5:] == [None, None, None]
    finally:
        _stop(world)


def test_a_killed_master_is_replaced_and_no_scan_is_lost(
    pg_dsn: str, redis_url: str, tmp_path: Path
) -> None:
    with redis_cluster(tmp_path / "cluster") as servers:
        world = _start(
            pg_dsn, redis_url, FixedClock(AT), SEALMARK_REDIS_CLUSTER_NODES=servers.seeds
        )
        try:
            verifier = build_verifier(world["container"])
            codes = _issue(world, 6)
            sessions: dict[str, set[str]] = {c.serial: set() for c in codes}
            ids: list[str] = []

            def scan(code: Any, session: str) -> Any:
                started = time.monotonic()
                try:
                    answer = _verify(world, code.digital_link, session=session, region="DE")
                except grpc.RpcError as exc:
                    assert exc.code() == Code.UNAVAILABLE, exc
                    outcomes["unavailable"] += 1
                    answer = None
                else:
                    ids.append(answer.verification_id)
                    sessions[code.serial].add(session)
                    outcomes["degraded" if answer.degraded else "ok"] += 1
                slowest[0] = max(slowest[0], time.monotonic() - started)
                return answer

            outcomes: Counter[str] = Counter()
            slowest = [0.0]
            health: set[str] = set()
            for code in codes:
                assert not scan(code, "before").degraded

            victim = next(iter(servers.masters()))
            servers.kill(victim)
            killed = time.monotonic()
            promoted_after = None
            n = 0
            while promoted_after is None and time.monotonic() - killed < 20:
                n += 1
                for code in codes:
                    scan(code, f"outage-{n % 20}")  # at most 64 sessions are kept
                health.add(verifier.health()["redis"])
                if servers.ok():
                    promoted_after = time.monotonic() - killed
            assert promoted_after is not None, "no replica took over within 20 s"
            assert outcomes["degraded"] > 0, outcomes  # the outage was seen, and answered
            assert "down" in health  # and health said which backend

            recovered_after = None  # the same Verifier, no restart: it tries Redis again
            while recovered_after is None and time.monotonic() - killed < 30:
                n += 1
                answers = [scan(code, f"after-{n % 20}") for code in codes]
                if all(a is not None and not a.degraded for a in answers):
                    recovered_after = time.monotonic() - killed
                else:
                    time.sleep(0.2)
            assert recovered_after is not None, outcomes
            assert verifier.health() == {"status": "ok", "redis": "up", "postgres": "up"}
            for code in codes:
                answer = scan(code, "last")
                assert answer is not None and not answer.degraded
                assert answer.session_count == len(sessions[code.serial])
            assert slowest[0] < 3.0, slowest  # every call answered well within its deadline

            verifier.flush()
            with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM scans WHERE verification_id = ANY(%s)", (ids,))
                assert cur.fetchone() == (len(ids),)
            conn.close()
            print(
                f"\nfailover: promoted after {promoted_after:.1f}s, recovered after"
                f" {recovered_after:.1f}s, slowest call {slowest[0]:.2f}s, {dict(outcomes)},"
                f" {len(ids)} scans all in PostgreSQL"
            )
        finally:
            _stop(world)
