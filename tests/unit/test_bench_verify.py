"""The verify bench lines' plumbing (issue 22 items 1, 2; issue 20 item 4): the same-I/O
baseline's handler behind the real server plumbing (port 0, fakes of the pool and the Redis
client), rounds that alternate two loads, the signed filler codes and their fresh samples, the
bench server's environment on a Redis Cluster, and the lines registered with their bars."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealmark.crypto.keys import SoftwareSigner
from sealmark.crypto.signature import canonical_bytes, decode_ai8030, verify
from sealmark.errors import Unauthenticated
from sealmark.gs1.code import GS1Code
from sealmark.server.app import create_server
from sealmark_app.bench import io_service, registry, verification
from sealmark_app.bench.codes import filler_serial, sample_numbers, signed_links
from sealmark_app.bench.load import LoadResult, merged
from sealmark_app.bench.registry import Bar
from sealmark_app.bench.suite import GTIN, server_environment

STORED = {"09520123456788F0000000000042": "commissioned"}


@dataclass
class FakeReads:
    rows: dict[str, str]
    statements: list[tuple[str, str, tuple[Any, ...]]]

    def __enter__(self) -> FakeReads:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute_prepared(self, name: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any]]:
        self.statements.append((name, sql, params))
        state = self.rows.get(params[0])
        return [(params[0], "bench", state)] if state else []


@dataclass
class FakeRedis:
    scripts: list[str] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)

    def register_script(self, script: str) -> Any:
        self.scripts.append(script)

        def run(keys: list[str]) -> int:
            self.calls.append(keys)
            return len(self.calls)

        return run


def _refuse(_bearer: str) -> Any:
    raise Unauthenticated("no tokens here")


@contextmanager
def _served() -> Iterator[tuple[grpc.Channel, list[Any], FakeRedis]]:
    statements: list[Any] = []
    redis = FakeRedis()
    database = SimpleNamespace(reads=lambda: FakeReads(STORED, statements))
    container: Any = SimpleNamespace(database=database, redis=redis)
    running = create_server(io_service.bindings(container), _refuse)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield channel, statements, redis
    finally:
        running.stop(0)


def test_the_io_baseline_reads_one_row_and_runs_one_script_per_call() -> None:
    with _served() as (channel, statements, redis):
        lookup = channel.unary_unary(io_service.METHOD)
        key = next(iter(STORED))
        assert lookup(key.encode(), timeout=5) == b"commissioned"  # public: no token
        assert lookup(b"09520123456788NOPE", timeout=5) == b""
        assert [s[0] for s in statements] == ["bench_io_code", "bench_io_code"]
        assert statements[0][2] == (key,) and "WHERE code_key = $1::text" in statements[0][1]
        assert redis.scripts == [io_service.SCRIPT]  # registered once, EVALSHA per call
        assert redis.calls == [[f"bio:{{{key}}}"], ["bio:{09520123456788NOPE}"]]
        with pytest.raises(grpc.RpcError) as refused:
            lookup(b"", timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(statements) == 2  # nothing read for a refused call


def test_rounds_alternate_the_loads_and_add_up() -> None:
    order: list[str] = []

    def call(name: str) -> Any:
        def run(_: int) -> None:
            if not order or order[-1] != name:
                order.append(name)

        return run

    results = verification.alternate({"a": call("a"), "b": call("b")}, seconds=0.08, rounds=4)
    assert order == ["a", "b", "a", "b", "a"]  # a b | b a | a b | b a, runs merged
    assert set(results) == {"a", "b"}
    assert results["a"].seconds == pytest.approx(0.08, abs=0.05)
    joined = merged([LoadResult(3, 1, 1.0, [1.0, 2.0, 3.0]), LoadResult(2, 0, 0.5, [4.0])])
    assert joined == LoadResult(5, 1, 1.5, [1.0, 2.0, 3.0, 4.0])


def test_filler_codes_are_signed_as_the_issuer_signs() -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    serials = [filler_serial(n) for n in (2_000, 9_999_999)]
    assert serials == ["F0000000002000", "F0000009999999"]
    links = signed_links(SoftwareSigner("k7", private), serials)
    for serial, link in zip(serials, links, strict=True):
        code = GS1Code.from_scan(link, today=date(2026, 12, 4))
        assert (code.gtin, code.serial, code.lot, code.expiry) == (
            GTIN,
            serial,
            "FILL",
            date(2030, 12, 31),
        )
        assert code.signature is not None
        key_id, signature = decode_ai8030(code.signature)
        assert key_id == "k7"
        message = canonical_bytes(GTIN, serial, "FILL", "301231", "k7")
        assert verify(public, message, signature)
        assert not verify(public, canonical_bytes(GTIN, serial, "FILL", "301230", "k7"), signature)


def test_samples_are_fresh_distinct_and_in_range() -> None:
    rng = random.Random(3)
    first = sample_numbers(rng, 10, 110, 60)
    assert len(set(first)) == 60 and all(10 <= n < 110 for n in first)
    second = sample_numbers(rng, 10, 110, 40, set(first))
    assert set(second).isdisjoint(first) and set(first) | set(second) == set(range(10, 110))
    with pytest.raises(ValueError, match="cannot draw 1 fresh codes"):
        sample_numbers(rng, 10, 110, 1, set(first) | set(second))


def test_the_bench_server_uses_a_cluster_instead_of_one_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SEALMARK_PROCESSES", "7")  # the caller's settings never leak in
    single = server_environment("postgresql://db", "redis://one:6379/0")
    assert single["SEALMARK_REDIS_URL"] == "redis://one:6379/0"
    assert "SEALMARK_PROCESSES" not in single
    seeds = "127.0.0.1:7001,127.0.0.1:7002"
    cluster = server_environment(
        "postgresql://db", "redis://one:6379/0", {"SEALMARK_REDIS_CLUSTER_NODES": seeds}
    )
    assert cluster["SEALMARK_REDIS_CLUSTER_NODES"] == seeds
    assert "SEALMARK_REDIS_URL" not in cluster  # the settings refuse both at once
    assert cluster["SEALMARK_DATABASE_URL"] == "postgresql://db"


def test_the_verify_lines_hold_the_issue_bars() -> None:
    benches = registry.registered()
    assert benches["verify_rps"].baseline == "verify_io_baseline_rps"
    assert benches["verify_rps"].bar == Bar(0.8, of="ratio")
    assert benches["verify_io_baseline_rps"].baseline is None
    assert benches["verify_p99_growth"].bar == Bar(1.5, at_least=False)
    assert benches["verify_rps_redis_cluster"].baseline == "verify_rps"
    assert benches["page_json_rps"].baseline == "verify_rps"
