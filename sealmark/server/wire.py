"""Conversions between the shared protobuf messages (CodeRef, Timestamp) and the core's
types, used by every service's gRPC face."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from sealmark.errors import InvalidArgument
from sealmark.units import UnitRef, scanned, sgtin, sscc
from sealmark.v1 import common_pb2


def unit_of(ref: common_pb2.CodeRef, field: str) -> UnitRef:
    """A CodeRef as a unit; InvalidArgument naming ``field`` when it is empty or malformed."""
    which = ref.WhichOneof("key")
    if which == "sgtin":
        return sgtin(ref.sgtin.gtin, ref.sgtin.serial, field)
    if which == "sscc":
        return sscc(ref.sscc, field)
    if which == "scanned":
        return scanned(ref.scanned, field)
    raise InvalidArgument(field, "required: one of sgtin, sscc, scanned")


def units_of(refs: Any, field: str) -> list[UnitRef]:
    return [unit_of(ref, f"{field}[{i}]") for i, ref in enumerate(refs)]


def code_ref(unit: UnitRef) -> common_pb2.CodeRef:
    if unit.is_sscc:
        return common_pb2.CodeRef(sscc=unit.sscc)
    return common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=unit.gtin, serial=unit.serial))


def time_of(message: Any, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when unset."""
    return getattr(message, field).ToDatetime(tzinfo=UTC) if message.HasField(field) else None


def stamp(at: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(at)
    return value
