"""The checks every request passes at the gRPC edge, derived from the proto descriptors.

A new message or field is covered without being listed: :func:`check` walks the fields that
are set and applies the rule of each field's kind, so that no handler ever sees

- a ``google.protobuf.Timestamp`` outside 0001-01-01..9999-12-31 or with ``nanos`` outside
  0..999,999,999 (nor a ``Duration`` outside ±10,000 years);
- an enum number the enum does not define (proto3 keeps unknown numbers);
- a repeated field with more than :data:`MAX_REPEATED` entries;
- a ``uint64`` above the largest PostgreSQL ``bigint``, or a ``double`` that is not finite;
- a string that is too long, or holds a character its field does not allow (below).

Strings follow the rule of their field's name (:data:`_RULES`): identifiers and locations
(the default) refuse control, format and separator characters; those that EPCIS exports as
URIs (locations, read points, parties, business transactions) refuse whitespace and the
characters a URI cannot hold; lots and serials keep to the GS1 AI encodable character set 82;
scanned payloads may hold the GS separator (U+001D); free text (reasons, notes) may hold tab
and line feed. What an identifier means (a check digit, a state) is the domain's to check.

Every refusal is an :class:`~sealmark.errors.InvalidArgument` naming the field by its path
from the request, e.g. ``PackRequest.place.location: control character U+0007 at 3``.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from sealmark.errors import InvalidArgument

MAX_REPEATED = 10_000
MAX_BYTES = 1024
# Bytes fields that carry more than a key or a hash. An image is bounded here by the server's
# 8 MiB message limit only: its reader refuses more than 6 MiB, naming the field, and checks
# format and pixels (sealmark/covert/reader.py).
_BYTES_LIMITS = {
    "VerifyImageRequest.image": 8 * 1024 * 1024,
    # A brand's logo or product image: the use case refuses more than 512 KiB, naming the
    # field; this bound only keeps a hostile message from reaching it.
    "SetProductMediaRequest.content": 1024 * 1024,
}
MAX_UINT64 = 2**63 - 1  # PostgreSQL bigint
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)  # 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z
DURATION_SECONDS = 315_576_000_000  # ±10,000 years, as the protobuf JSON mapping allows
MAX_NANOS = 999_999_999

_F = FieldDescriptor
# Control (Cc), format (Cf: bidi overrides, zero-width), line/paragraph separators, surrogates
# and noncharacters: never part of an identifier or a location.
_INVISIBLE = (
    "\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\ud800-\udfff\ufeff\ufff9-\ufffb\ufffe\uffff"
)
_CSET82 = r"!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z"


@dataclass(frozen=True)
class StringRule:
    """What one kind of string field may hold: at most ``max_chars`` characters, none of
    which matches ``refused``; ``what`` says what the allowed set is, in messages."""

    max_chars: int
    refused: re.Pattern[str]
    what: str


def _rule(max_chars: int, refused: str, what: str) -> StringRule:
    return StringRule(max_chars, re.compile(f"[{refused}]"), what)


IDENTIFIER = _rule(256, _INVISIBLE, "an identifier")
NAME = _rule(64, _INVISIBLE, "an identifier")
URI_PART = _rule(
    256,
    _INVISIBLE + ' \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000<>"{}|\\\\^`',
    'an EPCIS identifier (no whitespace, no <>"{}|\\^`)',
)
GS1_CSET82 = _rule(20, f"^{_CSET82}", "the GS1 AI encodable character set 82")
SCANNED = _rule(4096, _INVISIBLE.replace("\x00-\x1f", "\x00-\x1c\x1e\x1f"), "a scanned code")
TEXT = _rule(2000, _INVISIBLE.replace("\x00-\x1f", "\x00-\x08\x0b-\x1f"), "text")
TOKEN = _rule(2048, _INVISIBLE, "a page token")

# Field name -> rule; "Message.field" entries take precedence. Unlisted: IDENTIFIER.
_RULES: dict[str, StringRule] = {
    "location": URI_PART,
    "read_point": URI_PART,
    "to_party": URI_PART,
    "from_party": URI_PART,
    "BizTransaction.type": URI_PART,
    "BizTransaction.id": URI_PART,
    "lot": GS1_CSET82,
    "serial": GS1_CSET82,
    "serials": GS1_CSET82,
    "event_id": NAME,
    "request_id": NAME,
    "batch_id": NAME,
    "pool_request_id": NAME,
    "line_id": NAME,
    "work_order": NAME,
    "payload": SCANNED,
    "scanned": SCANNED,
    "reason": TEXT,
    "note": TEXT,
    "page_token": TOKEN,
    # sealmark/webhooks/urls.py checks the rest (https, no credentials, no private target).
    "CreateWebhookEndpointRequest.url": _rule(
        2048, _INVISIBLE + " \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000", "a URL"
    ),
    # sealmark/gs1/links.py checks the rest of a product link (https, a DNS host, the title).
    "ProductLink.href": _rule(1024, _INVISIBLE + " ", "a URL (no whitespace)"),
    "ProductLink.title": TEXT,
}


def check(message: Message) -> None:
    """Raise InvalidArgument naming the first field of ``message`` (at any depth) that breaks
    its rule; return if there is none."""
    _check(message, type(message).DESCRIPTOR.name)


def rule_for(field: FieldDescriptor) -> StringRule:
    """The rule of a string field."""
    owner = field.containing_type.name if field.containing_type is not None else ""
    return _RULES.get(f"{owner}.{field.name}") or _RULES.get(field.name) or IDENTIFIER


def _check(message: Message, path: str) -> None:
    special = _SPECIAL.get(message.DESCRIPTOR.full_name)
    if special is not None:
        special(message, path)
        return
    for field, value in message.ListFields():
        name = f"{path}.{field.name}"
        if field.is_repeated:
            if len(value) > MAX_REPEATED:
                raise InvalidArgument(name, f"{len(value)} entries, want at most {MAX_REPEATED}")
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                key_rule, value_rule = _checker(entry.fields[0]), _checker(entry.fields[1])
                for key, item in value.items():
                    key_rule(key, f"{name}[{key!r}]")
                    value_rule(item, f"{name}[{key!r}]")
                continue
            checker = _checker(field)
            for index, item in enumerate(value):
                checker(item, f"{name}[{index}]")
        else:
            _checker(field)(value, name)


@functools.cache  # one checker per field descriptor: a bounded set
def _checker(field: FieldDescriptor) -> Callable[[Any, str], None]:
    kind = field.type
    if kind == _F.TYPE_MESSAGE:
        return _check
    if kind == _F.TYPE_ENUM and field.enum_type is not None:
        return functools.partial(_check_enum, field.enum_type)
    if kind == _F.TYPE_STRING:
        return functools.partial(_check_string, rule_for(field))
    if kind == _F.TYPE_BYTES:
        owner = field.containing_type.name if field.containing_type is not None else ""
        return functools.partial(
            _check_bytes, _BYTES_LIMITS.get(f"{owner}.{field.name}", MAX_BYTES)
        )
    if kind in (_F.TYPE_UINT64, _F.TYPE_FIXED64):
        return _check_uint64
    if kind in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return _check_finite
    return _unchecked


def _unchecked(value: Any, path: str) -> None:
    return None


def _check_enum(enum: EnumDescriptor, value: int, path: str) -> None:
    if value not in enum.values_by_number:
        raise InvalidArgument(path, f"{value} is not a {enum.name}")


def _check_string(rule: StringRule, value: str, path: str) -> None:
    if len(value) > rule.max_chars:
        raise InvalidArgument(path, f"{len(value)} characters, want at most {rule.max_chars}")
    found = rule.refused.search(value)
    if found is not None:
        raise InvalidArgument(path, _describe(found.group(), found.start(), rule))


def _describe(char: str, at: int, rule: StringRule) -> str:
    code = f"U+{ord(char):04X}"
    category = unicodedata.category(char)
    if category == "Cc":
        return f"control character {code} at {at}"
    if category in ("Cf", "Cs", "Cn", "Zl", "Zp"):
        return f"invisible character {code} at {at}"
    shown = repr(char) if char.isprintable() and not char.isspace() else code
    return f"character {shown} at {at} is not allowed in {rule.what}"


def _check_bytes(limit: int, value: bytes, path: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(path, f"{len(value)} bytes, want at most {limit}")


def _check_uint64(value: int, path: str) -> None:
    if value > MAX_UINT64:
        raise InvalidArgument(path, f"{value}, want at most {MAX_UINT64}")


def _check_finite(value: float, path: str) -> None:
    if not math.isfinite(value):
        raise InvalidArgument(path, f"{value}, want a finite number")


def _check_timestamp(message: Message, path: str) -> None:
    seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
    low, high = TIMESTAMP_SECONDS
    if not low <= seconds <= high:
        raise InvalidArgument(
            f"{path}.seconds", f"{seconds}, want {low}..{high} (0001-01-01..9999-12-31)"
        )
    if not 0 <= nanos <= MAX_NANOS:
        raise InvalidArgument(f"{path}.nanos", f"{nanos}, want 0..{MAX_NANOS}")


def _check_duration(message: Message, path: str) -> None:
    seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
    if abs(seconds) > DURATION_SECONDS:
        raise InvalidArgument(
            f"{path}.seconds", f"{seconds}, want -{DURATION_SECONDS}..{DURATION_SECONDS}"
        )
    if abs(nanos) > MAX_NANOS or (seconds and nanos and (seconds < 0) != (nanos < 0)):
        raise InvalidArgument(
            f"{path}.nanos", f"{nanos}, want -{MAX_NANOS}..{MAX_NANOS} with the sign of seconds"
        )


_SPECIAL: dict[str, Callable[[Message, str], None]] = {
    "google.protobuf.Timestamp": _check_timestamp,
    "google.protobuf.Duration": _check_duration,
}
