"""The stores of the in-memory fakes (see :mod:`audit.memory`), over its tables. Every method
keeps the contract of its port in :mod:`audit.ports`."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from audit.domain import (
    ACTIVE_STATES,
    GENUINE_VERDICTS,
    RECALLABLE,
    SIGNATURE_REASONS,
    SUSPECT_VERDICTS,
    Alert,
    AlertStatus,
    RecallScope,
    Resolution,
    alert_kind,
)
from audit.memory_tables import State
from audit.ports import CodeFacts, EventRow, HistoryRow, RecallCounts, Recorded, ScanRow
from sealmark.epcis.recorded import KINDS
from sealmark.errors import AlreadyExists, NotFound
from sealmark.events import NewEvent
from sealmark.tenancy.model import Tenant
from sealmark.webhooks.events import OutboxEvent


class Reads:
    def __init__(self, state: State, writable: bool) -> None:
        self._s = state
        self._writable = writable

    def _write(self) -> State:
        if not self._writable:
            raise RuntimeError("a reads() store writes nothing: use transaction()")
        return self._s

    def containment_history(self, keys: list[str]) -> list[HistoryRow]:
        wanted = set(keys)
        rows = [(i, r) for i, r in enumerate(self._s.history) if r[1] in wanted]
        rows.sort(key=lambda x: (x[1][1], x[0]))
        return [(r[1], r[2], r[3], r[4], r[5], copy.deepcopy(r[6])) for _, r in rows]

    def owns_unit(self, tenant_id: str, key: str) -> bool:
        if key.startswith("sscc:"):
            sscc = self._s.ssccs.get(key)
            return sscc is not None and sscc[0] == tenant_id
        code = self._s.codes.get(key)
        return code is not None and code.tenant_id == tenant_id


def _alert(alert_id: int, row: dict[str, Any]) -> Alert:
    details = {str(k): str(v) for k, v in row["details"].items()}
    return Alert(
        id=alert_id,
        kind=alert_kind(row["kind"], details),
        status=AlertStatus(row["status"]),
        code_key=row["code_key"],
        region=details.pop("region", ""),
        raised_at=row["raised_at"],
        details=details,
        note=row["note"] or "",
        acknowledged_at=row["acknowledged_at"],
        resolved_at=row["resolved_at"],
        resolution=Resolution(row["resolution"]) if row["resolution"] else None,
        actor=row["changed_by"] or "",
    )


def within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or at >= since) and (until is None or at < until)


class MemoryAuditStore(Reads):
    def __init__(self, state: State, now: Callable[[], datetime], writable: bool) -> None:
        super().__init__(state, writable)
        self._now = now

    # -- alerts -------------------------------------------------------------------------
    def _alerts(self, tenant_id: str) -> list[tuple[int, dict[str, Any]]]:
        return sorted((i, a) for i, a in self._s.alerts.items() if a["tenant_id"] == tenant_id)

    def alert(self, tenant_id: str, alert_id: int, lock: bool = False) -> Alert | None:
        row = self._s.alerts.get(alert_id)
        return _alert(alert_id, row) if row and row["tenant_id"] == tenant_id else None

    def alerts(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        kinds: list[str] | None = None,
        signature: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        code_key: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        found = []
        for i, a in reversed(self._alerts(tenant_id)):
            forged = str(a["details"].get("reason") or "") in SIGNATURE_REASONS
            if (
                (signature is None or forged == signature)
                and (status is None or a["status"] == status)
                and (kinds is None or a["kind"] in kinds)
                and within(a["raised_at"], since, until)
                and (code_key is None or a["code_key"] == code_key)
                and (before_id is None or i < before_id)
            ):
                found.append(_alert(i, a))
        return found[:limit]

    def alerts_after(self, tenant_id: str, after_id: int, limit: int) -> list[Alert]:
        return [_alert(i, a) for i, a in self._alerts(tenant_id) if i > after_id][:limit]

    def alerts_by_id(self, tenant_id: str, ids: list[int]) -> list[Alert]:
        wanted = set(ids)
        return [_alert(i, a) for i, a in self._alerts(tenant_id) if i in wanted]

    def last_alert_id(self, tenant_id: str) -> int:
        return max((i for i, _ in self._alerts(tenant_id)), default=0)

    def set_alert_status(
        self,
        alert_id: int,
        status: AlertStatus,
        note: str | None,
        resolution: Resolution | None,
        actor: str,
        at: datetime,
    ) -> None:
        row = self._write().alerts.get(alert_id)
        if row is None:
            return
        stamp = "acknowledged_at" if status is AlertStatus.ACKNOWLEDGED else "resolved_at"
        row.update(
            status=status.value,
            note=row["note"] if note is None else note,
            resolution=resolution.value if resolution else None,
            changed_by=actor,
            **{stamp: at},
        )

    # -- units ----------------------------------------------------------------------------
    def code(self, tenant_id: str, key: str) -> CodeFacts | None:
        c = self._s.codes.get(key)
        if c is None or c.tenant_id != tenant_id:
            return None
        return CodeFacts(
            c.key,
            c.gtin,
            c.serial,
            c.lot,
            c.expiry,
            c.state,
            c.key_id,
            c.signature,
            c.work_order,
            c.line_id,
            c.request_id,
            c.issued_at,
            c.market,
        )

    def owns_product(self, tenant_id: str, gtin: str) -> bool:
        product = self._s.products.get(gtin)
        return product is not None and product[0] == tenant_id

    def status_events(self, tenant_id: str, gtin: str, serial: str) -> list[EventRow]:
        return [
            (e.kind, e.request_id or "", e.occurred_at, e.recorded_at, copy.deepcopy(e.payload))
            for e in self._s.events
            if e.tenant_id == tenant_id
            and e.kind.startswith("codes.")
            and e.kind != "codes.issued"
            and serial in (e.payload.get("serials") or [])
            and e.payload.get("gtin") == gtin
        ]

    def logistics_events(self, tenant_id: str, keys: list[str]) -> list[EventRow]:
        wanted = set(keys)
        return [
            (e.kind, e.request_id or "", e.occurred_at, e.recorded_at, copy.deepcopy(e.payload))
            for e in self._s.events
            if e.tenant_id == tenant_id
            and e.kind.startswith("logistics.")
            and wanted & set(e.payload.get("codes") or [])
        ]

    def recall_of(self, key: str) -> tuple[str, str, datetime, str] | None:
        taken = self._s.recalled.get(key)
        if taken is None:
            return None
        r = self._s.recalls[taken[0]]
        return taken[0], r["reason"], r["effective_at"], r["request_id"]

    def scans(self, key: str) -> list[ScanRow]:
        rows = sorted((s for s in self._s.scans if s[2] == key), key=lambda s: s[8])
        return [(s[0], s[8], s[3], s[6], list(s[4]), float(s[5])) for s in rows]

    # -- recalls --------------------------------------------------------------------------
    def lock_recalls(self, tenant_id: str) -> None:
        self._write()  # the world's lock is held for the whole transaction

    def record(self, event: NewEvent) -> int:
        return self._write().append_event(event, self._now())

    def add_outbox(self, events: Sequence[OutboxEvent]) -> int:
        return int(self._write().hooks.write_outbox(events))

    def recall_by_request(self, tenant_id: str, request_id: str) -> tuple[str, str] | None:
        for recall_id, r in self._s.recalls.items():
            if r["tenant_id"] == tenant_id and r["request_id"] == request_id:
                return recall_id, r["fingerprint"]
        return None

    def add_recall(
        self,
        recall_id: str,
        tenant_id: str,
        request_id: str,
        scope: RecallScope,
        reason: str,
        at: datetime,
        token_id: str,
        fingerprint: str,
    ) -> None:
        state = self._write()
        if recall_id in state.recalls or self.recall_by_request(tenant_id, request_id):
            raise AlreadyExists(f"recall {recall_id} or request {request_id} exists")
        state.recalls[recall_id] = {
            "tenant_id": tenant_id,
            "request_id": request_id,
            "scope": scope.as_json(),
            "reason": reason,
            "effective_at": at,
            "token_id": token_id,
            "fingerprint": fingerprint,
        }

    def recall(self, tenant_id: str, recall_id: str) -> tuple[str, datetime] | None:
        r = self._s.recalls.get(recall_id)
        return (r["reason"], r["effective_at"]) if r and r["tenant_id"] == tenant_id else None

    def hold_recalled_lot(
        self, tenant_id: str, gtin: str, lot: str, reason: str, at: datetime, by: str
    ) -> None:
        self._write().lot_holds[(gtin, lot)] = (tenant_id, True, reason, at, by)

    def lot_hold(self, tenant_id: str, gtin: str, lot: str) -> tuple[bool, str] | None:
        hold = self._s.lot_holds.get((gtin, lot))
        return (hold[1], hold[2]) if hold and hold[0] == tenant_id else None

    def recall_units(self, tenant_id: str, scope: RecallScope, recall_id: str, at: datetime) -> int:
        state = self._write()
        tree = set(scope.keys)
        if scope.kind == "parent":
            frontier = set(tree)
            while frontier:
                frontier = {c for c, p in state.containment.items() if p in frontier} - tree
                tree |= frontier
        changed = 0
        for code in state.codes.values():
            hit = {
                "lot": code.gtin == scope.gtin and code.lot == scope.lot,
                "gtin": code.gtin == scope.gtin,
            }.get(scope.kind, code.key in tree)
            if (
                hit
                and code.tenant_id == tenant_id
                and code.state in RECALLABLE
                and code.key not in state.recalled
            ):
                state.recalled[code.key] = (recall_id, True, code.state, code.market)
                code.state = "recalled"
                changed += 1
        if scope.kind == "parent":
            for key in sorted(k for k in tree if k in state.ssccs):
                owner, unit_state, market = state.ssccs[key]
                if owner == tenant_id and unit_state in RECALLABLE and key not in state.recalled:
                    state.recalled[key] = (recall_id, False, unit_state, market)
                    state.ssccs[key] = (owner, "recalled", market)
        return changed

    def recall_report(self, recall_id: str, effective_at: datetime) -> RecallCounts:
        taken = {k: v for k, v in self._s.recalled.items() if v[0] == recall_id}
        codes = {k: v for k, v in taken.items() if v[1]}
        markets = Counter(v[3] or "" for v in codes.values())
        regions: Counter[str] = Counter()
        for key in codes:
            active = [s for s in self._s.scans if s[2] == key and s[7]]
            if active:
                regions[max(active, key=lambda s: s[8])[6]] += 1
        since = sum(1 for s in self._s.scans if s[2] in taken and s[8] >= effective_at)
        return (
            len(codes),
            sorted(markets.items(), key=lambda x: (-x[1], x[0])),
            sorted(regions.items(), key=lambda x: (-x[1], x[0])),
            since,
            sum(1 for v in codes.values() if v[2] == "commissioned" and v[3] is None),
            sum(1 for v in codes.values() if v[2] == "dispensed"),
        )

    # -- reports --------------------------------------------------------------------------
    def reconciliation(
        self, tenant_id: str, work_order: str, gtin: str | None, lot: str | None
    ) -> list[list[Any]]:
        groups: dict[str, list[int]] = {}
        for c in self._s.codes.values():
            ordered = self._s.issue_requests.get((c.tenant_id, c.request_id or "")) == work_order
            if not (
                ordered
                and c.tenant_id == tenant_id
                and gtin in (None, c.gtin)
                and lot in (None, c.lot)
            ):
                continue
            counts = groups.setdefault(c.lot or "", [0] * 6)
            for n, hit in enumerate(
                (
                    True,
                    c.state not in ("allocated", "scrapped", "returned"),
                    c.state == "scrapped",
                    c.state == "returned",
                    c.state in ("in_transit", "received"),
                    c.state == "allocated",
                )
            ):
                counts[n] += hit
        return [[name, *counts] for name, counts in sorted(groups.items())]

    def _scans(
        self, tenant_id: str, since: datetime | None, until: datetime | None, region: str | None
    ) -> list[tuple[str, str, datetime]]:
        """(verdict, region, at) of the tenant's scans in the window and region."""
        return [
            (s[3], s[6], s[8])
            for s in self._s.scans
            if s[1] == tenant_id and within(s[8], since, until) and region in (None, s[6])
        ]

    def scans_by_region_day(
        self, tenant_id: str, since: datetime | None, until: datetime | None, region: str | None
    ) -> list[list[Any]]:
        groups: dict[tuple[date, str], list[int]] = {}
        for verdict, where, at in self._scans(tenant_id, since, until, region):
            counts = groups.setdefault((at.astimezone(UTC).date(), where), [0, 0, 0, 0])
            genuine, suspect = verdict in GENUINE_VERDICTS, verdict in SUSPECT_VERDICTS
            counts[0] += genuine
            counts[1] += suspect
            counts[2] += not genuine and not suspect
            counts[3] += 1
        return [[day, where, *counts] for (day, where), counts in sorted(groups.items())]

    def hotspots(
        self, tenant_id: str, since: datetime | None, until: datetime | None, region: str | None
    ) -> list[list[Any]]:
        groups: dict[str, list[int]] = {}
        for verdict, where, _ in self._scans(tenant_id, since, until, region):
            counts = groups.setdefault(where, [0, 0, 0, 0])
            if verdict in SUSPECT_VERDICTS:
                counts[SUSPECT_VERDICTS.index(verdict)] += 1
        for _, a in self._alerts(tenant_id):
            if within(a["raised_at"], since, until):
                groups.setdefault(str(a["details"].get("region", "")), [0, 0, 0, 0])[3] += 1
        rows = [
            [where, *counts]
            for where, counts in groups.items()
            if sum(counts) > 0 and region in (None, where)
        ]
        return sorted(rows, key=lambda r: (-sum(r[1:]), r[0]))

    def nearing_expiry(
        self, tenant_id: str, gtin: str | None, lot: str | None, today: date, horizon: date
    ) -> list[list[Any]]:
        groups: Counter[tuple[str, str, date, str]] = Counter()
        for c in self._s.codes.values():
            if (
                c.tenant_id == tenant_id
                and gtin in (None, c.gtin)
                and lot in (None, c.lot)
                and c.state in ACTIVE_STATES
                and c.expiry is not None
                and today <= c.expiry <= horizon
            ):
                groups[(c.gtin, c.lot or "", c.expiry, c.market or "")] += 1
        ordered = sorted(groups.items(), key=lambda x: (x[0][2], x[0][0], x[0][1], x[0][3]))
        return [[*group, n] for group, n in ordered]

    def serial_products(
        self, tenant_id: str, gtin: str | None
    ) -> list[tuple[str, str, int, int, int]]:
        rows = []
        for g, (owner, alphabet, length) in sorted(self._s.products.items()):
            if owner != tenant_id or gtin not in (None, g):
                continue
            codes = [c for c in self._s.codes.values() if c.tenant_id == owner and c.gtin == g]
            legacy = sum(1 for c in codes if c.serial_scheme == 1)
            rows.append((g, alphabet, length, len(codes), legacy))
        return rows

    def verdict_mix(
        self, tenant_id: str, since: datetime | None, until: datetime | None
    ) -> list[list[Any]]:
        counts = Counter(verdict for verdict, _, _ in self._scans(tenant_id, since, until, None))
        return [[v, n] for v, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]

    def unresolved_alerts(self, tenant_id: str) -> list[list[Any]]:
        counts: Counter[tuple[str, bool, str]] = Counter()
        for _, a in self._alerts(tenant_id):
            if a["status"] != "resolved":
                signature = a["details"].get("reason", "") in SIGNATURE_REASONS
                counts[(a["kind"], signature, a["status"])] += 1
        return [[*group, n] for group, n in sorted(counts.items())]

    def recall_reach(self, tenant_id: str, limit: int) -> list[list[Any]]:
        mine = [(i, r) for i, r in self._s.recalls.items() if r["tenant_id"] == tenant_id]
        mine.sort(key=lambda x: (-x[1]["effective_at"].timestamp(), x[0]))
        rows = []
        for recall_id, r in mine[:limit]:
            taken = {k: v for k, v in self._s.recalled.items() if v[0] == recall_id}
            codes = [v for v in taken.values() if v[1]]
            markets = {v[3] for v in codes if v[3] is not None}
            since = sum(1 for s in self._s.scans if s[2] in taken and s[8] >= r["effective_at"])
            rows.append(
                [recall_id, r["effective_at"], r["reason"], len(codes), len(markets), since]
            )
        return rows


class MemoryExportReader(Reads):
    def __init__(self, state: State) -> None:
        super().__init__(state, writable=False)

    def tenant(self, tenant_id: str) -> Tenant:
        try:
            return self._s.tenants[tenant_id]
        except KeyError:
            raise NotFound(f"no tenant {tenant_id}") from None

    def events(
        self, tenant_id: str, since: datetime | None, until: datetime | None
    ) -> Generator[Recorded, None, None]:
        for e in list(self._s.events):
            if e.tenant_id == tenant_id and e.kind in KINDS and within(e.occurred_at, since, until):
                yield Recorded(
                    e.id,
                    e.kind,
                    e.request_id or "",
                    e.occurred_at,
                    copy.deepcopy(e.payload),
                    e.subject,
                )

    def lot_facts(
        self, tenant_id: str, gtin: str, serials: list[str]
    ) -> dict[str, tuple[str, date | None]]:
        found = {}
        for serial in serials:
            c = self._s.codes.get(gtin + serial)
            if c is not None and c.tenant_id == tenant_id:
                found[c.serial] = (c.lot or "", c.expiry)
        return found

    def recalled(self, recall_id: str) -> list[str]:
        return sorted(k for k, v in self._s.recalled.items() if v[0] == recall_id)

    def lot_units(self, tenant_id: str, gtin: str, lot: str) -> set[str]:
        units = {
            c.key
            for c in self._s.codes.values()
            if c.tenant_id == tenant_id and c.gtin == gtin and c.lot == lot
        }
        return self._closure(units, up=True)

    def descendants_ever(self, keys: list[str]) -> set[str]:
        return self._closure(set(keys), up=False)

    def _closure(self, units: set[str], up: bool) -> set[str]:
        """``units`` and every unit that ever held (``up``) or was inside one of them."""
        links = [(r[1], r[2]) for r in self._s.history if r[2] is not None]
        frontier = set(units)
        while frontier:
            if up:
                found = {parent for unit, parent in links if unit in frontier}
            else:
                found = {unit for unit, parent in links if parent in frontier}
            frontier = {k for k in found if k is not None} - units
            units |= frontier
        return units
