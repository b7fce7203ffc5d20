"""Recorded domain events as EPCIS events: :func:`sealmark.epcis.recorded.export_events`, given
the stored state it needs (the ILMD of commissioned codes, the units a recall took).

=============================  ==========================================================
recorded                       exported
=============================  ==========================================================
codes.commissioned             Commission, one per (lot, expiry) in the batch, with the ILMD
codes.scrapped                 Decommission, SCRAPPED (damaged)
aggregation.packed             Pack
aggregation.unpacked           Unpack (no children when everything was taken out)
aggregation.reworked           Unpack of everything, Pack of the new content (repackaging)
aggregation.replaced           the old label unpacked and the new one packed in its place,
                               the old one's children moved into the new one (replacing);
                               Replace when it had neither
aggregation.sampled            Unpack from its parent, Sample
logistics.shipped              Ship to the party, with the destination market
logistics.received             Receive from the party
logistics.decommissioned       Decommission with the CBV retirement of the reason
logistics.decommission_undone  Restore, with the disposition the units return to
lot.held / lot.released        LotStatus of the lot's class
audit.recalled                 Recall of every unit it took, in events of at most 10,000
=============================  ==========================================================

Returned codes are not exported: they were never printed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from audit.ports import ExportReader, Recorded
from sealmark.epcis.document import Identifiers, stream_document
from sealmark.epcis.events import ExportEvent
from sealmark.epcis.recorded import export_events

__all__ = ["Mapper"]


class Mapper:
    def __init__(self, store: ExportReader, tenant_id: str, identifiers: Identifiers) -> None:
        self._store = store
        self._tenant = tenant_id
        self._identifiers = identifiers
        self._recalled: dict[str, list[str]] = {}

    def document(self, events: Iterable[ExportEvent], created: datetime) -> Iterator[bytes]:
        return stream_document(events, self._identifiers, created)

    def units(self, recorded: Recorded) -> set[str]:
        """The unit keys an event names (for filtering by lot or code)."""
        p = recorded.payload
        if recorded.kind == "codes.commissioned":
            return {str(p["gtin"]) + str(s) for s in p.get("serials", [])}
        if recorded.kind == "audit.recalled":
            return set(self._recall_units(str(p["recall_id"])))
        found: set[str] = set()
        for name in ("parent", "old", "new", "code"):
            if p.get(name):
                found.add(str(p[name]))
        for name in ("children", "codes", "removed", "added"):
            found.update(str(k) for k in p.get(name) or [])
        return found

    def lot(self, recorded: Recorded) -> tuple[str, str] | None:
        """(GTIN, lot) of a lot hold or release; None for any other event."""
        if recorded.kind not in ("lot.held", "lot.released"):
            return None
        p = recorded.payload
        if p.get("gtin"):
            return str(p["gtin"]), str(p.get("lot") or "")
        gtin, _, lot = recorded.subject.removeprefix("lot:").partition(":")
        return gtin, lot

    def _recall_units(self, recall_id: str) -> list[str]:
        if recall_id not in self._recalled:
            self._recalled = {recall_id: self._store.recalled(recall_id)}  # keep one
        return self._recalled[recall_id]

    def events(self, recorded: Recorded) -> Iterator[ExportEvent]:
        mapped = export_events(
            recorded.kind,
            recorded.payload,
            recorded.occurred_at,
            subject=recorded.subject,
            facts=lambda gtin, serials: self._store.lot_facts(self._tenant, gtin, serials),
            recalled=self._recall_units,
        )
        yield from mapped.events
