"""ListChildren pages in protobuf wire format, encoded directly.

An explosion is the one response whose size grows with the pallet: 1,500 ``Child`` messages.
Built through the protobuf runtime (``children.add`` and two nested ``CodeRef``s each) it cost
3.9 ms of the 10 ms budget. Encoded here row by row it cost 1.3 ms on a fast day of the
development machine, 2.5 ms on a slow one. Units under one parent share everything but their
own code, so the tail of each ``Child`` (parent, depth, state, level, market) is encoded once
per parent; and the database hands over a parent's units as one newline-joined text
(:class:`aggregator.domain.ChildGroup`), so a case of 24 items of one GTIN is encoded with two
string operations on that text, not 24 times.

Field numbers and types come from the message descriptors, checked when this module loads; a
change to those messages that this encoder does not follow fails at import, and
``tests/unit/test_aggregator_wire.py`` compares every output with the runtime's own encoding.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import FieldDescriptor

from aggregator.domain import ChildGroup, ChildRow
from sealmark.units import SSCC_PREFIX
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

Row = ChildRow


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


def children_page(groups: Sequence[ChildGroup], token: str) -> bytes:
    """One ``ListChildrenResponse``, encoded.

    The page is assembled as text in which each character stands for one byte (Latin-1) and
    encoded once at the end. A group of items of one GTIN and one serial length, with ASCII
    keys and one tail, is encoded whole with two string operations on its newline-joined keys
    (a case of 24 bottles, say); any other group row by row."""
    parts = [_group_text(g) for g in groups]
    if token:
        parts.append(_delimited(_TOKEN, token.encode()).decode("latin-1"))
    return "".join(parts).encode("latin-1")


def _group_text(group: ChildGroup) -> str:
    keys, count = group.keys, group.count
    if group.varying is not None or not keys.isascii() or keys.startswith(SSCC_PREFIX):
        return _rows_text(group.rows())
    key_length = (len(keys) + 1) // count - 1
    gtin = keys[:14]
    n = key_length - 14  # the serial's length
    tail = _tail(group.parent, group.depth, group.level, group.state, group.market)
    # Every key of one length (newlines exactly every key_length + 1 characters) and of one
    # GTIN (a newline before each key but the first, and always followed by the GTIN).
    if (
        not 0 < n < 100 - len(tail)
        or keys[key_length :: key_length + 1] != "\n" * (count - 1)
        or len(keys) != count * (key_length + 1) - 1
        or keys.count("\n" + gtin) != count - 1
    ):
        return _rows_text(group.rows())
    text = tail.decode("latin-1")
    head = _item_head(gtin, n, len(tail))
    return head + keys[14:].replace("\n" + gtin, text + head) + text


def _rows_text(rows: Sequence[Row]) -> str:
    """``Child`` entries of ``rows`` as Latin-1 text.

    The page is assembled as text in which each character stands for one byte (Latin-1) and
    encoded once at the end, so an item's serial goes in as the ``str`` it came as, without a
    per-row ``encode``. Only ASCII keys take that path; any other key is encoded as UTF-8 and
    carried over byte for byte. Consecutive rows under one parent share the tail of their
    ``Child``, and items of one GTIN and serial length share everything before the serial:
    both are encoded once per run."""
    tails: dict[tuple[str, int, int, str, str | None], str] = {}
    parts: list[str] = []
    append, prefix = parts.append, SSCC_PREFIX
    tail, head, head_of, serial_length = "", "", "", -1
    # The run's tail's fields, compared one by one (no tuple a row); no parent before the first.
    p: str | None = None
    d, lv, st, m = 0, 0, "", None
    for key, parent, depth, level, state, market in rows:
        if parent != p or depth != d or level != lv or state != st or market != m:
            p, d, lv, st, m = shared = parent, depth, level, state, market
            tail = tails.get(shared, "")
            if not tail:
                tail = tails[shared] = _tail(*shared).decode("latin-1")
            head_of = ""  # the head's length byte covers the tail
        n = len(key) - 14  # the serial's length, if this is an item
        if 0 < n < 100 - len(tail) and key.isascii() and not key.startswith(prefix):
            if not head_of or n != serial_length or not key.startswith(head_of):
                head_of, serial_length = key[:14], n
                head = _item_head(head_of, n, len(tail))
            append(head + key[14:] + tail)
        else:
            child = _delimited(_CODE, code_ref(key)) + tail.encode("latin-1")
            append(_delimited(_CHILDREN, child).decode("latin-1"))
    return "".join(parts)


def _item_head(gtin: str, serial_length: int, tail_length: int) -> str:
    """An item's ``Child`` up to its serial (all of its lengths under 128: one byte each), as
    Latin-1 text."""
    n = serial_length
    return (
        _CHILDREN
        + _SHORT[n + _CHILD_FIXED + tail_length]
        + _CODE
        + _SHORT[n + _REF_FIXED]
        + _SGTIN
        + _SHORT[n + _SGTIN_FIXED]
        + _GTIN_14
        + gtin.encode()
        + _SERIAL
        + _SHORT[n]
    ).decode("latin-1")


def _tail(parent: str, depth: int, level: int, state: str, market: str | None) -> bytes:
    """Everything of a ``Child`` after its code: the same for all children of one parent."""
    return (
        _delimited(_PARENT, code_ref(parent))
        + _number(_DEPTH, depth)
        + _number(_STATE, STATES.get(state, 0))
        + _number(_LEVEL, level)
        + (_delimited(_MARKET, market.encode()) if market else b"")
    )
