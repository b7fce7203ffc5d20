"""The client-chosen ids every service checks the same way: request ids, line ids, work
orders and EPCIS event ids. Returns the value or raises InvalidArgument naming the field. Pure.

The other shared input checks already have one home each: GTINs and SSCCs in
:mod:`sealmark.gs1.checkdigit` (``normalize_gtin``, ``validate_sscc``), API tokens in
:mod:`sealmark.tenancy.tokens` (``split_token``)."""

from __future__ import annotations

import re

from sealmark.errors import InvalidArgument

__all__ = ["check_request_id"]

# What a line's PLC can generate and a log line can quote without escaping.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def check_request_id(value: str, field: str) -> str:
    """A client-chosen id (request, line, work order, event). fullmatch: no trailing newline."""
    if not _REQUEST_ID.fullmatch(value):
        raise InvalidArgument(field, "want 1..64 characters of A-Z a-z 0-9 . _ : -")
    return value
