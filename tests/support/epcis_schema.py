"""The official EPCIS 2.0 JSON schema as a validator, for every test that checks an export."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

# jsonschema ships no type stubs and types-jsonschema is not a dev dependency.
from jsonschema import FormatChecker, validators  # type: ignore[import-untyped]

from tests.reference import EPCIS2

SCHEMA: dict[str, Any] = json.loads((EPCIS2 / "EPCIS-JSON-Schema.json").read_text("utf-8"))
EXAMPLES = sorted((EPCIS2 / "examples").glob("*.jsonld"))

# jsonschema checks "uri" and "date-time" only with optional packages (rfc3987,
# rfc3339-validator) that are not installed, and would pass anything silently; these two
# checks stand in for them so that the schema's formats are really enforced.
FORMATS = FormatChecker()
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # a real date and time
    return _RFC3339.fullmatch(value) is not None


def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or _ABSOLUTE_URI.fullmatch(value) is not None


FORMATS.checks("date-time", raises=ValueError)(_is_date_time)
FORMATS.checks("uri")(_is_uri)
VALIDATOR_CLASS = validators.validator_for(SCHEMA)
VALIDATOR = VALIDATOR_CLASS(SCHEMA, format_checker=FORMATS)
