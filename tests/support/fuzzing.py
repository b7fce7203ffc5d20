"""Requests for any RPC, built from the proto descriptors, and their hostile mutations.

:func:`seed` fills a request of any type with valid values of a brand's real resources
(chosen by field name, so a new RPC gets a sensible request without being listed);
:func:`paths` lists every field a mutation can reach; :func:`mutations` gives, per field
kind, the hostile values of the fuzz classes (sizes, control characters, invalid UTF-8,
integer, Timestamp and enum limits, huge repeated fields, messages near and past 8 MiB), each
marked when the edge must refuse it with INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from sealmark.v1 import aggregator_pb2, audit_pb2, issuer_pb2, verifier_pb2
from tests.support.hostile import HostileWorld, fresh_id

F = FieldDescriptor
MODULES = (issuer_pb2, aggregator_pb2, verifier_pb2, audit_pb2)
MIB = 1024 * 1024
BAD_UTF8_MARK = "Zq9FuZZ"  # replaced on the wire by bytes that are not UTF-8, same length
BAD_UTF8_BYTES = b"\xffq9Fu\xc0\xfe"
_INT_LIMITS = {
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
}


def methods() -> list[MethodDescriptor]:
    """Every RPC of sealmark.v1."""
    return [
        method
        for module in MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def path_of(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _string(world: HostileWorld, name: str) -> str | None:
    brand = world.brand
    values = {
        "gtin": brand.gtin,
        "serial": world.serials[-1],
        "serials": world.serials[-1],
        "sscc": world.ssccs[0],
        "lot": world.lot,
        "expiry": "301231",
        "company_prefix": brand.prefix,
        "tenant_id": brand.tenant_id,
        "line_id": "line-1",
        "work_order": "WO-1",
        "reason": "fuzz",
        "note": "fuzz",
        "location": "urn:epc:id:sgln:9526000.00001.0",
        "read_point": "urn:epc:id:sgln:9526000.00001.7",
        "market": "DE",
        "destination_market": "DE",
        "region": "DE",
        "event_time_zone_offset": "+01:00",
        "to_party": "urn:epc:id:pgln:9526000.00002",
        "from_party": "urn:epc:id:pgln:9526000.00002",
        "type": "desadv",
        "id": "DESADV-1",
        "payload": world.links[-1],
        "locale": "en",
        "session_id": "fuzz-session",
        "device_id": "fuzz-device",
        "link_type": "gs1:pip",
        "href": "https://brand.example/fuzz",
        "title": "Fuzz",
        "lang": "en",
        "media_type": "text/html",
    }
    if name in ("event_id", "request_id", "batch_id"):
        return fresh_id(name[:2])
    return values.get(name)


def _number(name: str) -> int:
    return {"quantity": 1, "count": 1, "page_size": 10, "extension_digit": 1, "days_ahead": 30}.get(
        name, 0
    )


def seed(descriptor: Any, world: HostileWorld, depth: int = 0) -> Message:
    """A valid request of ``descriptor``'s type on the world's resources (the first member of
    each oneof; one entry in each repeated field)."""
    message: Any = GetMessageClass(descriptor)()
    now = int(time.time())
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.fields[0] is not field and not oneof.name.startswith("_"):
            continue
        name = field.name
        if field.message_type is not None:
            if field.message_type.full_name == "google.protobuf.Timestamp":
                target = getattr(message, name)
                target.seconds = now + 3600 if name == "to_time" else now - 60
            elif field.message_type.GetOptions().map_entry:
                continue
            elif depth < 4:
                child = seed(field.message_type, world, depth + 1)
                if field.is_repeated:
                    getattr(message, name).add().CopyFrom(child)
                else:
                    getattr(message, name).CopyFrom(child)
            continue
        value: Any
        if field.type == F.TYPE_STRING:
            value = _string(world, name)
        elif field.type == F.TYPE_ENUM:
            numbers = [v.number for v in field.enum_type.values if v.number]
            value = numbers[0] if numbers else None
        elif field.type in _INT_LIMITS:
            value = _number(name) or None
        elif field.type == F.TYPE_DOUBLE:
            value = {"latitude": 52.5, "longitude": 13.4}.get(name)
        else:
            value = None
        if value is None:
            continue
        if field.is_repeated:
            getattr(message, name).append(value)
        else:
            setattr(message, name, value)
    built: Message = message
    return built


@dataclass(frozen=True)
class Path:
    """A field reached from the request: ``steps`` of field names (into the first entry of
    repeated message fields); ``shown`` as the edge names it, e.g. PackRequest.place.location."""

    steps: tuple[str, ...]
    field: FieldDescriptor
    shown: str


def paths(descriptor: Any, depth: int = 0) -> list[Path]:
    found: list[Path] = []
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue  # no request has a map; a response's maps are not fuzzed
        shown = f"{descriptor.name}.{field.name}" if depth == 0 else field.name
        found.append(Path((field.name,), field, shown))
        target = field.message_type
        if target is not None and depth < 4 and not target.full_name.startswith("google.protobuf."):
            index = "[0]" if field.is_repeated else ""
            for inner in paths(target, depth + 1):
                found.append(
                    Path((field.name, *inner.steps), inner.field, f"{shown}{index}.{inner.shown}")
                )
    return found


@dataclass(frozen=True)
class Mutation:
    """One hostile value for one kind of field: ``refused`` when the edge must answer
    INVALID_ARGUMENT naming the field (``names`` the suffix it must name)."""

    kind: str
    value: Any
    refused: bool = False
    names: str = ""
    raw_utf8: bool = False


def mutations(field: FieldDescriptor) -> list[Mutation]:
    """The hostile values of the fuzz classes that apply to ``field``."""
    if field.message_type is not None:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return [
                Mutation("timestamp", (2**63 - 1, 0), True, ".seconds"),
                Mutation("timestamp", (-(2**63), 0), True, ".seconds"),
                Mutation("timestamp", (-62_135_596_801, 0), True, ".seconds"),
                Mutation("timestamp", (253_402_300_800, 0), True, ".seconds"),
                Mutation("timestamp", (0, -1), True, ".nanos"),
                Mutation("timestamp", (0, 10**9), True, ".nanos"),
                Mutation("timestamp", (-62_135_596_800, 0)),  # 0001-01-01, the first valid
                Mutation("timestamp", (253_402_300_799, 999_999_999)),  # 9999-12-31, the last
                Mutation("timestamp", (0, 0)),
            ]
        out = [Mutation("clear", None)]
        if field.is_repeated:
            out += [Mutation("repeat", 100_000, True), Mutation("repeat", 10_001, True)]
        return out
    out = []
    if field.is_repeated:
        out += [Mutation("repeat", 100_000, True), Mutation("repeat", 10_001, True)]
    if field.type == F.TYPE_STRING:
        out += [
            Mutation("string", ""),
            Mutation("string", "x" * 257),
            Mutation("string", "9" * 4097),
            Mutation("string", "A" * 1_000_000, True),
            Mutation("string", "\x00", True),
            Mutation("string", "ab\x07cd", True),
            Mutation("string", "\x1b[31mred", True),
            Mutation("string", "ok\u202eko", True),
            Mutation("string", "line\r\nX-Injected: 1", True),
            Mutation("string", "ünïcødé-标识"),
            Mutation("string", BAD_UTF8_MARK, True, raw_utf8=True),
        ]
    elif field.type == F.TYPE_BYTES:
        out += [Mutation("bytes", b""), Mutation("bytes", b"\x00" * 2000, True)]
    elif field.type == F.TYPE_ENUM:
        out += [
            Mutation("enum", 99, True),
            Mutation("enum", -1, True),
            Mutation("enum", 2**31 - 1, True),
            Mutation("enum", 0),
        ]
    elif field.type in _INT_LIMITS:
        low, high = _INT_LIMITS[field.type]
        out += [Mutation("int", low), Mutation("int", high, field.type == F.TYPE_UINT64)]
        out += [Mutation("int", 1), Mutation("int", high // 2 + 1)]
    elif field.type == F.TYPE_DOUBLE:
        out += [
            Mutation("double", float("nan"), True),
            Mutation("double", float("inf"), True),
            Mutation("double", -1e308),
        ]
    elif field.type == F.TYPE_BOOL:
        out += [Mutation("bool", True), Mutation("bool", False)]
    return out


def _container(message: Any, steps: tuple[str, ...]) -> Any:
    for step in steps:
        value = getattr(message, step)
        repeated = hasattr(value, "add")  # a repeated message field: into its first entry
        message = (value[0] if len(value) else value.add()) if repeated else value
    return message


def apply(request: Message, path: Path, mutation: Mutation) -> bytes:
    """``request`` with the field at ``path`` set to the hostile value, on the wire."""
    descriptor: Any = request.DESCRIPTOR
    message: Any = GetMessageClass(descriptor)()
    message.CopyFrom(request)
    owner = _container(message, path.steps[:-1])
    name, field = path.steps[-1], path.field
    if mutation.kind == "timestamp":
        stamp = getattr(owner, name)
        stamp.seconds, stamp.nanos = mutation.value
    elif mutation.kind == "clear":
        owner.ClearField(name)
    elif mutation.kind == "repeat":
        repeated = getattr(owner, name)
        if field.message_type is not None:
            first = GetMessageClass(field.message_type)()
            if len(repeated):
                first.CopyFrom(repeated[0])
            del repeated[:]
            for _ in range(mutation.value):
                repeated.add().CopyFrom(first)
        else:
            value = repeated[0] if len(repeated) else _plain(field)
            del repeated[:]
            repeated.extend([value] * mutation.value)
    elif field.is_repeated:
        repeated = getattr(owner, name)
        del repeated[:]
        repeated.append(mutation.value)
    else:
        setattr(owner, name, mutation.value)
    data = message.SerializeToString()
    if mutation.raw_utf8:
        data = data.replace(BAD_UTF8_MARK.encode(), BAD_UTF8_BYTES)
    return bytes(data)


def _plain(field: FieldDescriptor) -> Any:
    if field.type == F.TYPE_STRING:
        return "x"
    if field.type == F.TYPE_BYTES:
        return b"x"
    if field.type == F.TYPE_ENUM and field.enum_type is not None:
        return field.enum_type.values[-1].number
    return 1


def oversized(request: Message, target_bytes: int) -> bytes | None:
    """``request`` with its first string field padded so that the whole message is
    ``target_bytes`` long (None when it has no string field at the top)."""
    strings = [
        f for f in request.DESCRIPTOR.fields if f.type == F.TYPE_STRING and not f.is_repeated
    ]
    if not strings:
        return None
    descriptor: Any = request.DESCRIPTOR
    message: Any = GetMessageClass(descriptor)()
    message.CopyFrom(request)
    field = strings[0]
    if field.containing_oneof is not None:
        message.ClearField(field.containing_oneof.fields[0].name)
    setattr(message, field.name, "")
    base = len(message.SerializeToString()) + 8  # tag and length of the padded field
    setattr(message, field.name, "x" * max(0, target_bytes - base))
    return bytes(message.SerializeToString())


def walk(request: Message) -> Iterator[tuple[Path, Mutation]]:
    """Every (field, hostile value) pair of a request type."""
    for path in paths(request.DESCRIPTOR):
        for mutation in mutations(path.field):
            yield path, mutation
