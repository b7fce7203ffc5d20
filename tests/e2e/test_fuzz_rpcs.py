"""Every RPC of sealmark.v1, found in the proto descriptors (a new RPC is fuzzed without being
listed), called on a real server with a valid request on a real brand's resources mutated
field by field (tests/support/fuzzing.py): no call may end INTERNAL or UNKNOWN, no traceback
may reach the log, a value the edge must refuse is INVALID_ARGUMENT naming its field, and
afterwards the brand's data still exports as valid EPCIS 2.0.

The bounded run (``make test``) takes, for every RPC, two fields at random for each class of
mutation; ``make fuzz`` (SEALMARK_FUZZ=long) takes every field with every mutation, and
SEALMARK_FUZZ_SEED picks another random draw."""

from __future__ import annotations

import collections
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

from sealmark.server import edge
from sealmark.v1 import audit_pb2, common_pb2
from tests.support import fuzzing
from tests.support.fuzzing import MIB, Mutation, Path
from tests.support.hostile import HostileWorld, start_world

pytestmark = pytest.mark.e2e
LONG = os.environ.get("SEALMARK_FUZZ", "") == "long"
SEED = int(os.environ.get("SEALMARK_FUZZ_SEED", "26"))
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
PER_CLASS = 2  # bounded run: fields drawn per class of mutation and RPC
STREAM_READ_S = 3.0  # a server stream is read this long at most, then cancelled
IN_LOG = ("Traceback", "Exception deserializing", "rpc.internal_error", "Exception ignored")


@dataclass
class Tally:
    calls: int = 0
    by_code: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str) -> Iterator[HostileWorld]:
    w = start_world(pg_dsn, redis_url, "fuzz", codes=40)
    yield w
    w.close()


def invoke(
    w: HostileWorld, method: MethodDescriptor, data: bytes, metadata: Any
) -> tuple[grpc.StatusCode, str]:
    """Send ``data`` as the request (the whole stream, for a client stream) as it is."""
    path = fuzzing.path_of(method)
    channel = w.channel
    try:
        if method.client_streaming and method.server_streaming:
            call: Any = channel.stream_stream(path)(iter([data]), metadata=metadata, timeout=30)
        elif method.client_streaming:
            channel.stream_unary(path)(iter([data]), metadata=metadata, timeout=30)
            return grpc.StatusCode.OK, ""
        elif method.server_streaming:
            call = channel.unary_stream(path)(data, metadata=metadata, timeout=30)
        else:
            channel.unary_unary(path)(data, metadata=metadata, timeout=30)
            return grpc.StatusCode.OK, ""
        started = time.monotonic()
        timer = _Canceller(call)
        failed = None
        for answer in call:
            failed = failed or _failure_in_band(method, answer)
            if time.monotonic() - started > STREAM_READ_S:
                break
        timer.stop()
        call.cancel()
        if failed is not None:
            return failed
        code = call.code()
        return (grpc.StatusCode.OK if code == grpc.StatusCode.CANCELLED else code), ""
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.CANCELLED and method.server_streaming:
            return grpc.StatusCode.OK, ""  # we cancelled a stream that was still open
        return code, details


def _failure_in_band(method: MethodDescriptor, answer: bytes) -> tuple[grpc.StatusCode, str] | None:
    """A failure a stream reports in an answer and goes on (PackAck's error_code and
    error_message), as the status and message a unary call would have ended with."""
    fields = method.output_type.fields_by_name
    if "error_code" not in fields or "error_message" not in fields:
        return None
    message: Any = GetMessageClass(method.output_type).FromString(answer)
    if not message.error_code:
        return None
    return grpc.StatusCode[message.error_code], message.error_message


class _Canceller:
    """Cancels a server stream that sends nothing for STREAM_READ_S (WatchAlerts waits)."""

    def __init__(self, call: Any) -> None:
        import threading

        self._timer = threading.Timer(STREAM_READ_S, call.cancel)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()


def plan(method: MethodDescriptor, request: Any, rng: random.Random) -> list[tuple[Path, Mutation]]:
    """What to send for one RPC: everything (long run), or PER_CLASS fields at random for each
    class of mutation (bounded run)."""
    pairs = list(fuzzing.walk(request))
    if LONG:
        return pairs
    classes: dict[tuple[str, bool, bool], list[tuple[Path, Mutation]]] = {}
    for path, mutation in pairs:
        key = (mutation.kind, mutation.refused, mutation.raw_utf8)
        classes.setdefault(key, []).append((path, mutation))
    return [
        pair
        for _, options in sorted(classes.items())
        for pair in rng.sample(options, min(PER_CLASS, len(options)))
    ]


def check(
    tally: Tally,
    method: MethodDescriptor,
    what: str,
    outcome: tuple[grpc.StatusCode, str],
    named: str | None,
) -> None:
    code, details = outcome
    tally.calls += 1
    tally.by_code[code.name] += 1
    where = f"{method.name} {what}: {code.name} {details[:160]!r}"
    if code in NEVER:
        tally.failures.append(where)
    elif named is not None and (code != grpc.StatusCode.INVALID_ARGUMENT or named not in details):
        tally.failures.append(f"{where} (want INVALID_ARGUMENT naming {named})")


def test_every_rpc_survives_every_class_of_hostile_input(
    world: HostileWorld,
    unraisable: list[Any],
    capfd: pytest.CaptureFixture[str],
) -> None:
    w = world
    ignored = unraisable
    rng = random.Random(SEED)
    tally = Tally()
    admin = w.md("admin")
    rpcs = fuzzing.methods()
    assert len(rpcs) >= 40
    for method in rpcs:
        request = fuzzing.seed(method.input_type, w)
        check(tally, method, "seed", invoke(w, method, request.SerializeToString(), admin), None)
        for path, mutation in plan(method, request, rng):
            data = fuzzing.apply(fuzzing.seed(method.input_type, w), path, mutation)
            suffix = mutation.names if mutation.kind == "timestamp" else ""
            named = path.shown + suffix if mutation.refused else None
            shown = repr(mutation.value)[:40]
            check(tally, method, f"{path.shown}={shown}", invoke(w, method, data, admin), named)
    # Near and past the 8 MiB receive limit: refused by its field's bound, or by grpc itself.
    sized = rpcs if LONG else rng.sample(rpcs, 6)
    for method in sized:
        request = fuzzing.seed(method.input_type, w)
        for target, allowed in (
            (8 * MIB - 64, {grpc.StatusCode.INVALID_ARGUMENT}),
            (8 * MIB + 1024, {grpc.StatusCode.RESOURCE_EXHAUSTED}),
        ):
            padded = fuzzing.oversized(request, target)
            if padded is None:
                continue
            code, details = invoke(w, method, padded, admin)
            tally.calls += 1
            tally.by_code[code.name] += 1
            if code not in allowed:
                tally.failures.append(f"{method.name} {len(padded)} bytes: {code.name} {details!r}")
    with capfd.disabled():
        print(f"\nfuzz: {tally.calls} calls over {len(rpcs)} RPCs, {dict(tally.by_code)}")
    assert tally.failures == [], "\n".join(tally.failures[:40])
    assert tally.calls > (3000 if LONG else 400)
    # The brand's data is unchanged or validly changed: it still exports, schema-valid.
    w.export()
    trace = list(
        w.stubs["audit"].Trace(
            audit_pb2.TraceRequest(
                code=common_pb2.CodeRef(
                    sgtin=common_pb2.Sgtin(gtin=w.brand.gtin, serial=w.serials[0])
                )
            ),
            metadata=w.md("auditor"),
            timeout=30,
        )
    )
    assert trace, "the first code's history is gone"
    time.sleep(0.2)
    out, err = capfd.readouterr()
    assert ignored == []
    for needle in IN_LOG:
        assert needle not in out and needle not in err, f"{needle!r} in the server's log"


def test_anonymous_hostile_bytes_are_refused_without_flooding_the_log(
    world: HostileWorld,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    w = world
    monkeypatch.setattr(edge, "REJECTIONS", edge._RateLimitedLog(edge.LOG_BURST, 3600))
    codes: collections.Counter[str] = collections.Counter()
    calls = 0
    for method in fuzzing.methods():
        request = fuzzing.seed(method.input_type, w)
        strings = [
            (p, m)
            for p, m in fuzzing.walk(request)
            if m.raw_utf8 or (m.kind == "string" and m.value == "\x00")
        ]
        for path, mutation in strings[:4]:
            data = fuzzing.apply(fuzzing.seed(method.input_type, w), path, mutation)
            for _ in range(5):
                code, details = invoke(w, method, data, None)
                calls += 1
                codes[code.name] += 1
                assert code not in NEVER, f"{method.name} {path.shown}: {code.name} {details}"
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    assert path.shown in details
    assert calls > 300 and codes["INVALID_ARGUMENT"] >= 20 and codes["UNAUTHENTICATED"] > 100
    public = fuzzing.seed(fuzzing_method("Verifier", "GetPublicKeySet").input_type, w)
    public.tenant_id = "acme\x00"  # type: ignore[attr-defined]
    code, details = invoke(
        w, fuzzing_method("Verifier", "GetPublicKeySet"), public.SerializeToString(), None
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "GetPublicKeySetRequest.tenant_id: control character U+0000 at 4"
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "Exception deserializing" not in out + err
    assert (out + err).count("rpc.rejected") <= edge.LOG_BURST


def fuzzing_method(service: str, name: str) -> MethodDescriptor:
    return next(
        m for m in fuzzing.methods() if m.containing_service.name == service and m.name == name
    )
