"""GS1 element strings (what a GS1 DataMatrix / GS1 QR / GS1-128 / DataBar carries) and HRI.

Generation is ours, so what we print is exactly what we sign. Parsing splits the string with
biip's ``GS1Message`` (it knows every AI's length from the GS1 Barcode Syntax Dictionary),
after our own checks on the raw characters, and every value is then held to
:func:`sealmark.gs1.ai.validate_value`. ``^`` in input stands for FNC1 (the notation of
GS1's test vectors); a scanner sends the GS character (ASCII 29) instead.

HRI parsing is ours: biip's drops whitespace inside values and skips text it cannot read,
which would turn a bad code into a different, valid-looking one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from biip import ParseConfig, ParseError
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_messages import GS1Message

from sealmark.errors import InvalidArgument
from sealmark.gs1.ai import SPECS, has_predefined_length, validate_pairs
from sealmark.gs1.cset import CSET82, first_outside
from sealmark.gs1.symbology import GS1_ELEMENT_SYMBOLOGIES, SYMBOLOGIES, strip_symbology

GS = "\x1d"
_BODY_CHARS = CSET82 | {GS}  # one set, built once: first_outside keeps a pattern per set
FNC1_NOTATION = "^"
Pairs = list[tuple[str, str]]
MAX_LENGTH = 512  # far above any symbol's capacity; bounds work on hostile input
# Dates are checked by us without the clock (biip's check reads today's date).
_BIIP = ParseConfig(gs1_element_strings_verify_date=False)
_HRI_AI = re.compile(r"\((\d{2,4})\)")
_FORMAT_LENGTH = re.compile(r"[A-Z]\.{0,2}(\d+)")


def build_element_string(
    pairs: Sequence[tuple[str, str]], separator: str = GS, field: str = "element_string"
) -> str:
    """Concatenate AIs and values, with ``separator`` after every value of an AI without a
    predefined length unless it is last. Raises InvalidArgument naming ``field`` for no AIs,
    an unknown or repeated AI, or an invalid value."""
    validate_pairs(pairs, field)
    parts = []
    for index, (ai, value) in enumerate(pairs):
        parts.append(ai + value)
        if index < len(pairs) - 1 and not has_predefined_length(ai):
            parts.append(separator)
    return "".join(parts)


def build_hri(pairs: Sequence[tuple[str, str]], field: str = "hri") -> str:
    """Human-readable interpretation, ``(01)09520123456788(21)ABC``. Raises like
    :func:`build_element_string`."""
    validate_pairs(pairs, field)
    return "".join(f"({ai}){value}" for ai, value in pairs)


def parse_element_string(payload: str, field: str = "element_string") -> Pairs:
    """The (AI, value) pairs of an element string, in order.

    Accepts an optional symbology identifier (``]d2``, ``]Q3``, ``]C1``, ``]e0``, ``]J1``), a
    leading FNC1 (``^`` or GS), GS or ``^`` separators, and a trailing CR/LF from a scanner.
    Without a separator a variable-length value runs to the end or its maximum length; one
    that stops short of both (a malformed (7007) before ``21…``) is refused, not split.
    Raises InvalidArgument naming ``field``: empty input, a character outside CSET 82, an
    empty element, an unknown AI, an invalid or repeated value.
    """
    prefix, body = strip_symbology(payload)
    if prefix is not None and prefix not in GS1_ELEMENT_SYMBOLOGIES:
        raise InvalidArgument(field, f"{prefix} ({SYMBOLOGIES[prefix]}) carries no element string")
    body = body.rstrip("\r\n").replace(FNC1_NOTATION, GS)
    body = body.removeprefix(GS)
    if not body:
        raise InvalidArgument(field, "empty element string")
    if len(body) > MAX_LENGTH:
        raise InvalidArgument(field, f"{len(body)} characters, want at most {MAX_LENGTH}")
    bad = first_outside(body, _BODY_CHARS)
    if bad is not None:
        raise InvalidArgument(
            field, f"character {body[bad]!r} at position {bad} is not in GS1 CSET 82"
        )
    if GS * 2 in body or body.startswith(GS):
        raise InvalidArgument(field, "two separators in a row: an empty element")
    try:
        message = GS1Message.parse(body, config=_BIIP)
    except ParseError as exc:
        raise InvalidArgument(field, str(exc)) from exc
    pairs = [(e.ai.ai, e.value) for e in message.element_strings]
    _check_separators(body, pairs, field)
    validate_pairs(pairs, field)
    return pairs


def _check_separators(body: str, pairs: Pairs, field: str) -> None:
    """Refuse a variable-length value that stops short of a separator.

    biip ends a value where the AI's pattern stops matching, so a malformed (7007) of eight
    digits followed by ``21ABC`` would read as (7007) six digits + (21) a serial. A value
    without a predefined length must end at a separator, at the end of the message or at its
    maximum length."""
    position = 0
    for index, (ai, value) in enumerate(pairs):
        position += len(ai) + len(value)
        if has_predefined_length(ai) or index == len(pairs) - 1:
            continue
        if body[position : position + 1] == GS:
            position += 1
        elif len(value) < _max_length(ai):
            following = pairs[index + 1][0]
            raise InvalidArgument(
                field,
                f"({ai}) {value[:30]!r} runs into ({following}) without a separator: "
                f"a malformed ({ai}) value, or a missing FNC1 / GS after it",
            )


def _max_length(ai: str) -> int:
    spec = SPECS.get(ai)
    if spec is not None:
        return spec.max_length
    # "N4+N6[+N6]", "N4+X..70": the first part is the AI itself.
    parts = GS1ApplicationIdentifier.extract(ai).format.split("+")[1:]
    return sum(int(n) for part in parts for n in _FORMAT_LENGTH.findall(part))


def parse_hri(text: str, field: str = "hri") -> Pairs:
    """The pairs of HRI text ``(01)…(10)…``. A value runs to the next ``(`` + 2–4 digits +
    ``)``, so a value holding such text cannot be written as HRI. Raises InvalidArgument
    naming ``field``: text before the first AI, an empty value, anything element strings
    reject (spaces are not stripped: space is not in CSET 82)."""
    if len(text) > MAX_LENGTH:
        raise InvalidArgument(field, f"{len(text)} characters, want at most {MAX_LENGTH}")
    matches = list(_HRI_AI.finditer(text))
    if not matches or matches[0].start() != 0:
        raise InvalidArgument(field, "want HRI text starting with an AI in brackets, '(01)…'")
    pairs = []
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        pairs.append((match.group(1), text[match.end() : end]))
    validate_pairs(pairs, field)
    return pairs
