"""The EPCIS 2.0 export: recorded events of a tenant, filtered by time, lot or code, turned
into EPCIS events (:mod:`audit.epcis_mapping`) and written as one streamed JSON-LD document
(:func:`sealmark.epcis.document.stream_document`)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime

from audit.domain import check_range
from audit.epcis_mapping import Mapper
from audit.ports import ExportReader, ExportStorage, Recorded
from audit.trace import holders
from sealmark.epcis.document import IdentifierFormat, Identifiers
from sealmark.epcis.events import ExportEvent
from sealmark.errors import InvalidArgument, NotFound
from sealmark.tenancy.model import Principal, Role


@dataclass(frozen=True)
class ExportFilter:
    since: datetime | None = None
    until: datetime | None = None
    gtin: str = ""
    lot: str = ""
    code: str = ""  # a unit key
    descendants: bool = False
    urn: bool = False


class Counter:
    """How many events a running export has written (for ``ExportChunk.events_so_far``)."""

    def __init__(self) -> None:
        self.events = 0


class Exporter:
    def __init__(self, storage: ExportStorage, now: Callable[[], datetime]) -> None:
        self._storage = storage
        self._now = now

    def export(
        self, principal: Principal, query: ExportFilter, counter: Counter
    ) -> Generator[bytes, None, None]:
        """The document's bytes, produced as the events are read (one transaction: a
        consistent snapshot, read through a server-side cursor)."""
        principal.require(Role.AUDITOR)
        name = "ExportEpcisRequest"
        check_range(query.since, query.until, name)
        if query.lot and (len(query.lot) > 20 or not query.gtin):
            raise InvalidArgument(f"{name}.lot.lot", "GTIN and lot (at most 20 characters)")
        if query.descendants and not query.code:
            raise InvalidArgument(f"{name}.include_descendants", "needs code")
        tenant = principal.tenant_id
        with self._storage.snapshot() as store:
            wanted, windows = self._scope(store, tenant, query)
            identifiers = (
                Identifiers(IdentifierFormat.EPC_URN, store.tenant(tenant).prefix_length_for)
                if query.urn
                else Identifiers()
            )
            mapper = Mapper(store, tenant, identifiers)
            lot = (query.gtin, query.lot) if query.lot else None
            rows = store.events(tenant, query.since, query.until)
            events = (
                event
                for recorded in rows
                if wanted is None
                or (lot is not None and mapper.lot(recorded) == lot)
                or _selected(mapper.units(recorded), recorded, wanted, windows)
                for event in mapper.events(recorded)
            )
            try:
                yield from mapper.document(_counted(events, counter), self._now())
            finally:
                # A client that goes away closes this generator: the cursor must close now,
                # inside its transaction, not when the garbage collector gets to it after the
                # connection has gone back to the pool ("named cursor isn't valid anymore").
                events.close()
                rows.close()

    def _scope(
        self, store: ExportReader, tenant: str, query: ExportFilter
    ) -> tuple[set[str] | None, dict[str, list[tuple[datetime, datetime | None]]]]:
        """The units whose events are wanted (None: all), and for ancestors of a code the
        times they held it (their events count only then)."""
        if query.code:
            key = query.code
            if not store.owns_unit(tenant, key):
                raise NotFound(f"ExportEpcisRequest.code: {key} was not issued to you")
            held, _ = holders(store, key)
            windows: dict[str, list[tuple[datetime, datetime | None]]] = {}
            for h in held:
                windows.setdefault(h.ancestor, []).append((h.since, h.until))
            wanted = {key}
            if query.descendants:
                wanted |= store.descendants_ever([key])
            return wanted | set(windows), windows
        if query.lot:
            return store.lot_units(tenant, query.gtin, query.lot), {}
        return None, {}


def _selected(
    units: set[str],
    recorded: Recorded,
    wanted: set[str],
    windows: dict[str, list[tuple[datetime, datetime | None]]],
) -> bool:
    direct = units & wanted - set(windows)
    if direct:
        return True
    when = recorded.payload.get("event_time")
    at = datetime.fromisoformat(when) if when else recorded.occurred_at
    return any(
        since <= at and (until is None or at < until)
        for unit in units & set(windows)
        for since, until in windows[unit]
    )


def _counted(events: Iterator[ExportEvent], counter: Counter) -> Iterator[ExportEvent]:
    for event in events:
        counter.events += 1
        yield event
