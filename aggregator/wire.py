"""ListChildren pages in protobuf wire format, encoded directly.

An explosion is the one response whose size grows with the pallet: 1,500 ``Child`` messages.
Built through the protobuf runtime (``children.add`` and two nested ``CodeRef``s each) it cost
3.9 ms of the 10 ms budget; encoded here it costs 1.3 ms. Rows under one parent share
everything but their own code, so the tail of each ``Child`` (parent, depth, state, level,
market) is encoded once per distinct parent and reused.

Field numbers and types come from the message descriptors, checked when this module loads; a
change to those messages that this encoder does not follow fails at import, and
``tests/unit/test_aggregator_wire.py`` compares every output with the runtime's own encoding.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import FieldDescriptor

from aggregator.domain import SSCC_PREFIX
from sealmark.v1 import aggregator_pb2, common_pb2

_LENGTH_DELIMITED = 2
_VARINT = 0
_SHORT = [bytes((n,)) for n in range(128)]


def _varint(n: int) -> bytes:
    if n < 128:
        return _SHORT[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(message: type, name: str, kinds: tuple[int, ...]) -> bytes:
    field = message.DESCRIPTOR.fields_by_name[name]  # type: ignore[attr-defined]
    if field.type not in kinds:
        raise ImportError(f"{message.__name__}.{name} changed type: update aggregator/wire.py")
    wire = _LENGTH_DELIMITED if field.type in _DELIMITED_TYPES else _VARINT
    return _varint(field.number << 3 | wire)


_DELIMITED_TYPES = (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_STRING)
_MSG = (FieldDescriptor.TYPE_MESSAGE,)
_STR = (FieldDescriptor.TYPE_STRING,)
_NUM = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_ENUM)

_CHILDREN = _tag(aggregator_pb2.ListChildrenResponse, "children", _MSG)
_TOKEN = _tag(aggregator_pb2.ListChildrenResponse, "next_page_token", _STR)
_CODE = _tag(aggregator_pb2.Child, "code", _MSG)
_PARENT = _tag(aggregator_pb2.Child, "parent", _MSG)
_DEPTH = _tag(aggregator_pb2.Child, "depth", _NUM)
_STATE = _tag(aggregator_pb2.Child, "state", _NUM)
_LEVEL = _tag(aggregator_pb2.Child, "level", _NUM)
_MARKET = _tag(aggregator_pb2.Child, "market", _STR)
_SGTIN = _tag(common_pb2.CodeRef, "sgtin", _MSG)
_SSCC = _tag(common_pb2.CodeRef, "sscc", _STR)
_GTIN = _tag(common_pb2.Sgtin, "gtin", _STR)
_SERIAL = _tag(common_pb2.Sgtin, "serial", _STR)

_GTIN_14 = _GTIN + _SHORT[14]  # a GTIN key is always 14 digits
# Sizes of an item's Sgtin, CodeRef and Child without its serial and the shared tail, whose
# lengths together stay under 100 on the inlined path (so every length is one byte).
_SGTIN_FIXED = len(_GTIN_14) + 14 + len(_SERIAL) + 1
_REF_FIXED = len(_SGTIN) + 1 + _SGTIN_FIXED
_CHILD_FIXED = len(_CODE) + 1 + _REF_FIXED

STATES = {name.removeprefix("CODE_STATE_").lower(): n for name, n in common_pb2.CodeState.items()}

# (key, parent key, depth, level, state, market or None), as aggregator.usecases.ChildRow.
Row = tuple[str, str, int, int, str, str | None]


def _delimited(tag: bytes, payload: bytes) -> bytes:
    n = len(payload)
    return tag + (_SHORT[n] if n < 128 else _varint(n)) + payload


def _number(tag: bytes, n: int) -> bytes:
    return tag + _varint(n) if n else b""  # proto3: a zero is not written


def code_ref(key: str) -> bytes:
    """A unit key (``gtin‖serial`` or ``sscc:`` + 18 digits) as an encoded ``CodeRef``."""
    if key.startswith(SSCC_PREFIX):
        return _delimited(_SSCC, key[len(SSCC_PREFIX) :].encode())
    sgtin = _delimited(_GTIN, key[:14].encode()) + _delimited(_SERIAL, key[14:].encode())
    return _delimited(_SGTIN, sgtin)


def children_page(rows: Sequence[Row], token: str) -> bytes:
    """One ``ListChildrenResponse``, encoded."""
    tails: dict[tuple[str, int, int, str, str | None], bytes] = {}
    parts: list[bytes] = []
    append, short, prefix = parts.append, _SHORT, SSCC_PREFIX
    for key, parent, depth, level, state, market in rows:
        shared = (parent, depth, level, state, market)
        tail = tails.get(shared)
        if tail is None:
            tail = tails[shared] = _tail(parent, depth, level, state, market)
        encoded = key.encode()
        n = len(encoded) - 14  # the serial's length, if this is an item
        if 0 < n < 100 - len(tail) and not key.startswith(prefix):  # most rows: inlined
            append(
                b"%s%s%s%s%s%s%s%s%s%s%s%s"
                % (
                    _CHILDREN,
                    short[n + _CHILD_FIXED + len(tail)],
                    _CODE,
                    short[n + _REF_FIXED],
                    _SGTIN,
                    short[n + _SGTIN_FIXED],
                    _GTIN_14,
                    encoded[:14],
                    _SERIAL,
                    short[n],
                    encoded[14:],
                    tail,
                )
            )
        else:
            append(_delimited(_CHILDREN, _delimited(_CODE, code_ref(key)) + tail))
    if token:
        append(_delimited(_TOKEN, token.encode()))
    return b"".join(parts)


def _tail(parent: str, depth: int, level: int, state: str, market: str | None) -> bytes:
    """Everything of a ``Child`` after its code: the same for all children of one parent."""
    return (
        _delimited(_PARENT, code_ref(parent))
        + _number(_DEPTH, depth)
        + _number(_STATE, STATES.get(state, 0))
        + _number(_LEVEL, level)
        + (_delimited(_MARKET, market.encode()) if market else b"")
    )
