"""Server streams whose client goes away: the export's cursor and transaction end at once,
nothing is logged as an error, and the connection goes back to the pool."""

from __future__ import annotations

import gc
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import audit.epcis_mapping
import audit.grpc_service
import audit.postgres_export
from sealmark.errors import InvalidArgument
from sealmark.v1 import aggregator_pb2, audit_pb2, audit_pb2_grpc, common_pb2
from tests.support.hostile import HostileWorld, fresh_id, start_world

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str) -> Iterator[HostileWorld]:
    w = start_world(pg_dsn, redis_url, "cancel", codes=30)
    for n, start in enumerate(range(0, 30, 3)):  # ten packs: enough events for many pages
        w.stubs["aggregator"].Pack(
            aggregator_pb2.PackRequest(
                event_id=fresh_id("p"),
                parent=common_pb2.CodeRef(sscc=w.ssccs[2 + n]),
                children=[
                    common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=w.brand.gtin, serial=s))
                    for s in w.serials[start : start + 3]
                ],
            ),
            metadata=w.md("line"),
            timeout=10,
        )
    yield w
    w.close()


def _settled(w: HostileWorld, within_s: float = 10.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + within_s
    while (busy := w.busy_sessions()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return busy


def test_a_cancelled_paged_export_releases_its_cursor_and_connection(
    world: HostileWorld,
    unraisable: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    w = world
    ignored = unraisable
    monkeypatch.setattr(audit.postgres_export, "FETCH_ROWS", 1)  # one row per cursor fetch
    monkeypatch.setattr(audit.grpc_service, "CHUNK", 64)  # and many small messages
    for round_ in range(5):
        call = w.stubs["audit"].ExportEpcis(
            audit_pb2.ExportEpcisRequest(), metadata=w.md("auditor"), timeout=30
        )
        for _ in range(3 + round_):
            next(call)
        call.cancel()
        with pytest.raises(grpc.RpcError) as cancelled:
            list(call)
        assert cancelled.value.code() == grpc.StatusCode.CANCELLED
        assert _settled(w) == []
    time.sleep(0.3)  # let a late finalizer show itself if there is one
    out, err = capfd.readouterr()
    assert ignored == []
    for text in (out, err):
        assert "named cursor" not in text and "Traceback" not in text
        assert "Exception ignored" not in text and "rpc.internal_error" not in text
    # The pool is whole: as many exports as it has connections, and more, still complete.
    monkeypatch.setattr(audit.grpc_service, "CHUNK", 64 * 1024)
    for _ in range(12):
        document = w.export()
        assert len(document["epcisBody"]["eventList"]) >= 10
    assert _settled(w) == []


def test_a_client_that_disconnects_mid_export_leaves_nothing_open(
    world: HostileWorld,
    unraisable: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    w = world
    ignored = unraisable
    monkeypatch.setattr(audit.postgres_export, "FETCH_ROWS", 1)
    monkeypatch.setattr(audit.grpc_service, "CHUNK", 64)
    target = f"127.0.0.1:{w.running.port}"
    channel = grpc.insecure_channel(target)
    stub = audit_pb2_grpc.AuditStub(channel)
    call = stub.ExportEpcis(audit_pb2.ExportEpcisRequest(), metadata=w.md("auditor"), timeout=30)
    first = next(call)
    assert first.data.startswith(b"{")
    channel.close()  # the connection goes away under the stream
    assert _settled(w) == []
    time.sleep(0.3)
    out, err = capfd.readouterr()
    assert ignored == []
    assert "named cursor" not in out + err and "Traceback" not in out + err
    assert (
        json.loads(
            b"".join(
                c.data
                for c in w.stubs["audit"].ExportEpcis(
                    audit_pb2.ExportEpcisRequest(), metadata=w.md("auditor"), timeout=30
                )
            )
        )["type"]
        == "EPCISDocument"
    )


def test_an_export_that_fails_midway_closes_its_cursor_inside_the_transaction(
    world: HostileWorld,
    unraisable: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    w = world
    ignored = unraisable
    monkeypatch.setattr(audit.postgres_export, "FETCH_ROWS", 1)
    monkeypatch.setattr(audit.grpc_service, "CHUNK", 64)
    mapped = audit.epcis_mapping.Mapper.events
    seen = itertools.count()

    def failing(self: audit.epcis_mapping.Mapper, recorded: Any) -> Iterator[Any]:
        if next(seen) == 5:  # a stored event that cannot be exported, say
            raise InvalidArgument("children", "at least one identifier is required")
        return mapped(self, recorded)

    monkeypatch.setattr(audit.epcis_mapping.Mapper, "events", failing)
    for _ in range(3):
        seen = itertools.count()
        with pytest.raises(grpc.RpcError) as failed:
            list(
                w.stubs["audit"].ExportEpcis(
                    audit_pb2.ExportEpcisRequest(), metadata=w.md("auditor"), timeout=30
                )
            )
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _settled(w) == []
    gc.collect()  # whatever still held the cursor is finalized now
    time.sleep(0.3)
    out, err = capfd.readouterr()
    assert ignored == []
    assert "named cursor" not in out + err and "Exception ignored" not in out + err
