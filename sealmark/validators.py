"""The checks every service applies to the same kinds of input, in one place: request and event
ids, GTINs and SSCCs, token ids. Each returns the value (normalised where the kind has a normal
form) or raises InvalidArgument naming the field. Pure: no I/O."""

from __future__ import annotations

import re

from sealmark.errors import InvalidArgument
from sealmark.gs1.checkdigit import normalize_gtin, validate_sscc

__all__ = ["REQUEST_ID_RULE", "check_gtin", "check_request_id", "check_sscc", "check_token_id"]

# Request ids, line ids, work orders and EPCIS event ids: what a line's PLC can generate and a
# log line can quote without escaping.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
REQUEST_ID_RULE = "want 1..64 characters of A-Z a-z 0-9 . _ : -"
_TOKEN_ID = re.compile(r"[a-z2-7]{12}")


def check_request_id(value: str, field: str) -> str:
    """A client-chosen id (request, line, work order, event). fullmatch: no trailing newline."""
    if not _REQUEST_ID.fullmatch(value):
        raise InvalidArgument(field, REQUEST_ID_RULE)
    return value


def check_gtin(value: str, field: str) -> str:
    """A GTIN-8/12/13/14, returned as 14 digits."""
    return normalize_gtin(value, field)


def check_sscc(value: str, field: str) -> str:
    """An SSCC-18 with a valid check digit."""
    return validate_sscc(value, field)


def check_token_id(value: str, field: str) -> str:
    """The public id of an API token (the 12 base32 letters after ``smk_``)."""
    if not _TOKEN_ID.fullmatch(value):
        raise InvalidArgument(field, "want 12 characters of a-z 2-7")
    return value
