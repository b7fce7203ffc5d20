"""GS1 element strings (what a DataMatrix / GS1 QR / GS1-128 carries) and HRI text.

Generation is ours; parsing is biip's ``GS1Message``, with its errors turned into
InvalidArgument. ``^`` in input stands for FNC1 (the notation of GS1's test vectors).
"""

from __future__ import annotations

from collections.abc import Sequence

from biip import ParseError
from biip.gs1_messages import GS1Message

from sealmark.errors import InvalidArgument
from sealmark.gs1.ai import has_predefined_length, validate_value

GS = "\x1d"
Pairs = list[tuple[str, str]]
_SYMBOLOGY_PREFIXES = ("]d2", "]Q3", "]C1", "]e0", "]J1")


def build_element_string(pairs: Sequence[tuple[str, str]], separator: str = GS) -> str:
    """Concatenate AIs and values, with ``separator`` after every variable-length value
    that is not last. Values are validated (CSET 82, lengths, digits)."""
    if not pairs:
        raise InvalidArgument("element_string", "at least one AI is required")
    parts = []
    for index, (ai, value) in enumerate(pairs):
        validate_value(ai, value)
        parts.append(ai + value)
        if index < len(pairs) - 1 and not has_predefined_length(ai):
            parts.append(separator)
    return "".join(parts)


def build_hri(pairs: Sequence[tuple[str, str]]) -> str:
    """Human-readable interpretation: ``(01)09520123456788(21)ABC``."""
    return "".join(f"({ai}){value}" for ai, value in pairs)


def parse_element_string(payload: str, field: str = "element_string") -> Pairs:
    """Parse an element string with or without a symbology identifier, GS separators or the
    ``^`` FNC1 notation. Raises InvalidArgument naming ``field``."""
    body = payload
    for prefix in _SYMBOLOGY_PREFIXES:
        if body.startswith(prefix):
            body = body[len(prefix) :]
            break
    body = body.lstrip("^").replace("^", GS)
    if not body:
        raise InvalidArgument(field, "empty element string")
    if len(body) > 512:
        raise InvalidArgument(field, f"{len(body)} characters, want at most 512")
    try:
        message = GS1Message.parse(body)
    except ParseError as exc:
        raise InvalidArgument(field, str(exc)) from exc
    return _checked(message, field)


def parse_hri(text: str, field: str = "hri") -> Pairs:
    """Parse ``(01)…(10)…`` text. Raises InvalidArgument naming ``field``."""
    if len(text) > 512:
        raise InvalidArgument(field, f"{len(text)} characters, want at most 512")
    try:
        message = GS1Message.parse_hri(text)
    except ParseError as exc:
        raise InvalidArgument(field, str(exc)) from exc
    return _checked(message, field)


def _checked(message: GS1Message, field: str) -> Pairs:
    pairs = [(e.ai.ai, e.value) for e in message.element_strings]
    if not pairs:
        raise InvalidArgument(field, "no GS1 application identifiers found")
    for ai, value in pairs:
        validate_value(ai, value, f"{field} ({ai})")
    return pairs
