"""Where request bytes become checked messages: the servicers' own request deserializers and
the guard that runs :func:`sealmark.server.validation.check` once per request message.

grpc's default deserializer lets a ``DecodeError`` (invalid UTF-8 in a string field, broken
wire data) escape: grpc then logs "Exception deserializing request" with a traceback and
answers INTERNAL, before admission, so that anyone could fill the log. :func:`deserializer`
never raises: bytes that do not decode become an :class:`Undecodable` naming the field that
holds the invalid UTF-8 where the wire data shows it, and :func:`guarded` turns that, or a
message that fails the checks, into InvalidArgument inside the call, after admission, where the
interceptor maps it like any other error. Each refusal is logged as one line without the
value, at most :data:`LOG_BURST` lines per :data:`LOG_WINDOW_S` seconds per process (the
lines left out are counted in the next one), because anonymous callers can send any number.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import structlog
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from sealmark.errors import InvalidArgument
from sealmark.server.validation import check

LOG_BURST = 20
LOG_WINDOW_S = 60.0
_MAX_DEPTH = 32

log = structlog.get_logger("sealmark.rpc")


@dataclass(frozen=True)
class Undecodable:
    """Request bytes that are not a message of their type; ``field`` / ``reason`` say why."""

    field: str
    reason: str

    def error(self) -> InvalidArgument:
        return InvalidArgument(self.field, self.reason)


Deserializer = Callable[[bytes], "Message | Undecodable"]


@dataclass(frozen=True)
class Refused:
    """A message of a request stream that failed the checks, handed to a handler that reports
    failures per message (:func:`refusals_in_band`); ``request`` is the decoded message, or
    None when it did not decode."""

    error: InvalidArgument
    request: Message | None


Behaviour = TypeVar("Behaviour", bound=Callable[..., Any])


def refusals_in_band(behavior: Behaviour) -> Behaviour:
    """Mark a request-streaming servicer method whose contract reports a failed message in
    its answer and goes on (PackStream's acks): it receives a :class:`Refused` in the place of
    each message that fails the checks, instead of the stream ending with INVALID_ARGUMENT."""
    behavior.refusals_in_band = True  # type: ignore[attr-defined]
    return behavior


def deserializer(message_class: type[Message]) -> Deserializer:
    """A request deserializer for ``message_class`` that returns an Undecodable instead of
    raising."""
    descriptor = cast(Descriptor, message_class.DESCRIPTOR)

    def parse(data: bytes) -> Message | Undecodable:
        try:
            return message_class.FromString(data)
        except (DecodeError, RecursionError, ValueError):
            return undecodable(data, descriptor)

    return parse


def undecodable(data: bytes, descriptor: Descriptor) -> Undecodable:
    """Why ``data`` does not decode as ``descriptor``: the first string field holding invalid
    UTF-8, or broken wire data in general."""
    try:
        found = _bad_utf8(data, descriptor, descriptor.name, 0)
    except (IndexError, ValueError):
        found = None
    if found is not None:
        return Undecodable(*found)
    return Undecodable(descriptor.name, f"not a valid {descriptor.name} (malformed wire data)")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _bad_utf8(data: bytes, descriptor: Descriptor, path: str, depth: int) -> tuple[str, str] | None:
    if depth > _MAX_DEPTH:
        return None
    seen: dict[int, int] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            continue
        if wire in (1, 5):
            pos += 8 if wire == 1 else 4
            continue
        if wire != 2:
            return None
        size, pos = _varint(data, pos)
        chunk, pos = data[pos : pos + size], pos + size
        field = descriptor.fields_by_number.get(number)
        if field is None:
            continue
        index = seen[number] = seen.get(number, -1) + 1
        name = f"{path}.{field.name}" + (f"[{index}]" if field.is_repeated else "")
        if field.type == FieldDescriptor.TYPE_STRING:
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                return name, f"not valid UTF-8 (byte 0x{chunk[exc.start]:02X} at {exc.start})"
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
            found = _bad_utf8(chunk, field.message_type, name, depth + 1)
            if found is not None:
                return found
    return None


class _RateLimitedLog:
    """At most ``burst`` lines per ``window_s``; the next line says how many were left out."""

    def __init__(self, burst: int, window_s: float) -> None:
        self._burst, self._window = burst, window_s
        self._lock = threading.Lock()
        self._started = 0.0
        self._written = self._dropped = 0

    def rejected(self, method: str, error: InvalidArgument) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._started >= self._window:
                self._started, self._written = now, 0
            if self._written >= self._burst:
                self._dropped += 1
                return
            self._written += 1
            dropped, self._dropped = self._dropped, 0
        log.info(
            "rpc.rejected", method=method, field=error.field, reason=error.reason, left_out=dropped
        )


REJECTIONS = _RateLimitedLog(LOG_BURST, LOG_WINDOW_S)


def admitted(request: Any, method: str) -> Any:
    """``request`` if it decoded and passes the checks; InvalidArgument naming the field
    otherwise (and a rate-limited log line)."""
    try:
        if isinstance(request, Undecodable):
            raise request.error()
        check(request)
    except InvalidArgument as exc:
        REJECTIONS.rejected(method, exc)
        raise
    return request


def _admitted_stream(requests: Iterator[Any], method: str, in_band: bool) -> Iterator[Any]:
    """The admitted messages of a request stream (with ``in_band``, a Refused for each one
    that is not). A client that cancels or goes away while sending ends the stream (grpc
    raises a bare RpcError from the iterator then): that is not a fault of the handler, and
    no traceback is logged for it."""
    try:
        for request in requests:
            try:
                yield admitted(request, method)
            except InvalidArgument as exc:
                if not in_band:
                    raise
                yield Refused(exc, None if isinstance(request, Undecodable) else request)
    except grpc.RpcError:
        log.debug("rpc.request_stream_ended_by_client", method=method)


def guarded(behavior: Callable[..., Any], method: str, client_streaming: bool) -> Any:
    """``behavior`` (a servicer method) called only with admitted requests: each message of
    a request stream is checked as it is read."""
    if client_streaming:
        in_band = bool(getattr(behavior, "refusals_in_band", False))

        def run_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behavior(_admitted_stream(requests, method, in_band), context)

        return run_stream

    def run(request: Any, context: grpc.ServicerContext) -> Any:
        return behavior(admitted(request, method), context)

    return run
