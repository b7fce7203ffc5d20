"""An EPCIS 2.0 JSON-LD reader that trusts nothing the writer says: the official JSON schema,
the rules the schema leaves out (parentID on aggregations, …) and every eventID recomputed
with our CBV 2.0 event hash under the document's own @context."""

from __future__ import annotations

import json
from typing import Any

from sealmark.epcis.document import check_event
from tests.support.epcis_schema import VALIDATOR


class Unreadable(AssertionError):
    """The document is not EPCIS 2.0 as read here; the message lists why."""


def read_document(data: bytes | str | dict[str, Any], *, verify_ids: bool = True) -> list[Any]:
    """The events of an EPCISDocument, each checked; raises Unreadable naming every schema
    error or the first event that breaks a rule (an eventID that is not its hash among them,
    unless ``verify_ids`` is false)."""
    document = data if isinstance(data, dict) else json.loads(data)
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda e: list(e.path))
    if errors:
        raise Unreadable("; ".join(f"{list(e.path)}: {e.message}" for e in errors[:10]))
    if document.get("type") != "EPCISDocument":
        raise Unreadable(f"type {document.get('type')!r}, want EPCISDocument")
    events: list[Any] = document["epcisBody"]["eventList"]
    for i, event in enumerate(events):
        try:
            check_event(event, document.get("@context"), verify_event_id=verify_ids)
        except ValueError as exc:
            raise Unreadable(f"eventList[{i}]: {exc}") from exc
    return events
