"""Audit's use cases: the alert workflow and its live feed, Trace and Recall. Reports, the
EPCIS export and the transparency log have their own modules."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime

import structlog

from audit.domain import (
    REASON_MAX,
    RECALL_CODES_MAX,
    Alert,
    AlertKind,
    AlertStatus,
    RecallReport,
    RecallScope,
    Resolution,
    Severity,
    TraceItem,
    acknowledge,
    check_note,
    check_range,
    check_resolvable,
    signature_alerts,
    stored_kinds,
)
from audit.ports import AlertWake, AuditStorage, AuditStore
from audit.trace import trace
from sealmark.clock import Clock
from sealmark.errors import AlreadyExists, InvalidArgument, NotFound
from sealmark.events import NewEvent
from sealmark.tenancy.model import Principal, Role
from sealmark.units import UnitRef
from sealmark.validators import check_request_id as check_event_id
from sealmark.webhooks.events import recall_event

log = structlog.get_logger("audit")

PAGE_DEFAULT = 100
PAGE_MAX = 1000
WATCH_BATCH = 500
# An alert id can commit after a higher one (two verifier processes): a gap is looked for
# again for this long before the feed moves on without it.
GAP_WAIT_S = 5.0
WAKE_BLOCK_MS = 500  # below the Redis client's 1 s socket timeout


def page_size(value: int, field: str) -> int:
    if value < 0 or value > PAGE_MAX:
        raise InvalidArgument(field, f"{value}, want 0..{PAGE_MAX}")
    return value or PAGE_DEFAULT


class Auditor:
    """The alert workflow, Trace and Recall over the Audit store; ``wake`` only shortens the
    live feed's polling. ``monotonic`` times how long the feed waits for a gap in the ids."""

    def __init__(
        self,
        storage: AuditStorage,
        wake: AlertWake,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._wake = wake
        self._clock = clock
        self._monotonic = monotonic

    # -- alerts -------------------------------------------------------------------------
    def list_alerts(
        self,
        principal: Principal,
        *,
        status: AlertStatus | None = None,
        kind: AlertKind | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        code: UnitRef | None = None,
        size: int = 0,
        token: str = "",
    ) -> tuple[list[Alert], str]:
        principal.require(Role.AUDITOR)
        limit = page_size(size, "ListAlertsRequest.page.page_size")
        before = _int_token(token, "ListAlertsRequest.page.page_token")
        check_range(since, until, "ListAlertsRequest")
        with self._storage.reads() as store:
            rows = store.alerts(
                principal.tenant_id,
                status=status.value if status else None,
                kinds=stored_kinds(kind) if kind else None,
                signature=signature_alerts(kind),
                since=since,
                until=until,
                code_key=code.key if code else None,
                before_id=before,
                limit=limit + 1,
            )
        page = rows[:limit]
        return page, str(page[-1].id) if len(rows) > limit else ""

    def acknowledge(self, principal: Principal, alert_id: int, note: str) -> Alert:
        principal.require(Role.AUDITOR)
        text = check_note(note, "AlertActionRequest.note", required=False)
        with self._storage.transaction() as store:
            alert = self._alert(store, principal, alert_id)
            if acknowledge(alert):
                store.set_alert_status(
                    alert_id,
                    AlertStatus.ACKNOWLEDGED,
                    text or None,
                    None,
                    principal.token_id,
                    self._clock.now(),
                )
                alert = self._alert(store, principal, alert_id)
        return alert

    def resolve(
        self, principal: Principal, alert_id: int, note: str, resolution: Resolution | None
    ) -> Alert:
        principal.require(Role.ADMIN)
        text = check_note(note, "AlertActionRequest.note", required=True)
        if resolution is None:
            raise InvalidArgument(
                "AlertActionRequest.resolution", "required: confirmed, false_positive or duplicate"
            )
        with self._storage.transaction() as store:
            check_resolvable(self._alert(store, principal, alert_id))
            store.set_alert_status(
                alert_id,
                AlertStatus.RESOLVED,
                text,
                resolution,
                principal.token_id,
                self._clock.now(),
            )
            alert = self._alert(store, principal, alert_id)
        return alert

    def _alert(self, store: AuditStore, principal: Principal, alert_id: int) -> Alert:
        if alert_id <= 0:
            raise InvalidArgument("AlertActionRequest.alert_id", "required")
        alert = store.alert(principal.tenant_id, alert_id, lock=True)
        if alert is None:
            raise NotFound(f"AlertActionRequest.alert_id: no alert {alert_id}")
        return alert

    def watch(
        self,
        principal: Principal,
        after_id: int,
        kinds: set[AlertKind],
        min_severity: Severity | None,
        alive: Callable[[], bool],
    ) -> Iterator[Alert]:
        """Alerts of the caller's tenant after ``after_id`` (0: from now on), oldest first,
        until ``alive()`` turns False. PostgreSQL is the source; the verifier's Redis stream
        only wakes the feed early (without Redis it polls every half second)."""
        principal.require(Role.AUDITOR)
        tenant = principal.tenant_id
        if after_id == 0:
            with self._storage.reads() as store:
                after_id = store.last_alert_id(tenant)
        gaps: dict[int, float] = {}
        stream_id = "$"
        while alive():
            with self._storage.reads() as store:
                found = store.alerts_by_id(tenant, sorted(gaps)) if gaps else []
                fresh = store.alerts_after(tenant, after_id, WATCH_BATCH)
            now = self._monotonic()
            for alert in fresh:
                for missing in range(after_id + 1, alert.id):
                    gaps[missing] = now + GAP_WAIT_S
                after_id = alert.id
            for alert in found:
                gaps.pop(alert.id, None)
            gaps = {i: t for i, t in gaps.items() if t > now}
            for alert in [*found, *fresh]:
                if (not kinds or alert.kind in kinds) and (
                    min_severity is None or alert.severity.value >= min_severity.value
                ):
                    yield alert
            if len(fresh) == WATCH_BATCH:
                continue
            stream_id = self._wake.wait(tenant, stream_id, 200 if gaps else WAKE_BLOCK_MS)

    # -- trace --------------------------------------------------------------------------
    def trace(self, principal: Principal, unit: UnitRef) -> list[TraceItem]:
        principal.require(Role.AUDITOR)
        with self._storage.reads() as store:
            code = None if unit.is_sscc else store.code(principal.tenant_id, unit.key)
            if code is None and not (
                unit.is_sscc and store.owns_unit(principal.tenant_id, unit.key)
            ):
                raise NotFound(f"TraceRequest.code: {unit} was not issued to you")
            alerts = store.alerts(principal.tenant_id, code_key=unit.key, limit=10_000)
            return trace(store, principal.tenant_id, unit.key, code, alerts)

    # -- recall -------------------------------------------------------------------------
    def recall(
        self, principal: Principal, request_id: str, scope: RecallScope, reason: str
    ) -> RecallReport:
        """Recall every recallable unit in ``scope``. Idempotent by ``request_id``: a retry
        returns the report of the first call; the same id with another scope or reason is
        AlreadyExists."""
        principal.require(Role.ADMIN)
        check_event_id(request_id, "RecallRequest.request_id")
        reason = reason.strip()
        if not reason or len(reason) > REASON_MAX:
            raise InvalidArgument("RecallRequest.reason", f"required, at most {REASON_MAX} chars")
        if scope.kind == "codes" and not 1 <= len(scope.keys) <= RECALL_CODES_MAX:
            raise InvalidArgument(
                "RecallRequest.codes", f"{len(scope.keys)} codes, want 1..{RECALL_CODES_MAX}"
            )
        fingerprint = hashlib.sha256(
            json.dumps([scope.as_json(), reason], sort_keys=True).encode()
        ).hexdigest()
        recall_id = (
            "rc-" + hashlib.sha256(f"{principal.tenant_id}\n{request_id}".encode()).hexdigest()[:20]
        )
        with self._storage.transaction() as store:
            # One recall at a time per tenant: two recalls of overlapping scopes must not
            # deadlock on the units they both lock.
            store.lock_recalls(principal.tenant_id)
            earlier = store.recall_by_request(principal.tenant_id, request_id)
            if earlier is not None:
                if earlier[1] != fingerprint:
                    raise AlreadyExists(
                        f"RecallRequest.request_id: {request_id} was used for another recall"
                    )
                duplicate = True
                recall_id = earlier[0]
            else:
                duplicate = False
                now = self._clock.now()
                self._check_scope(store, principal, scope)
                store.add_recall(
                    recall_id,
                    principal.tenant_id,
                    request_id,
                    scope,
                    reason,
                    now,
                    principal.token_id,
                    fingerprint,
                )
                affected = store.recall_units(principal.tenant_id, scope, recall_id, now)
                if scope.kind == "lot":
                    # Codes of the lot not yet on the market stay off it: lines cannot
                    # commission, pack or ship a held lot, and this hold cannot be released.
                    store.hold_recalled_lot(
                        principal.tenant_id,
                        scope.gtin,
                        scope.lot,
                        f"recalled ({recall_id}): {reason}"[:200],
                        now,
                        principal.token_id,
                    )
                recorded = {
                    "recall_id": recall_id,
                    "scope": scope.kind,
                    "gtin": scope.gtin,
                    "lot": scope.lot,
                    "roots": len(scope.keys),
                    "affected": affected,
                    "reason": reason,
                }
                store.record(
                    NewEvent(
                        tenant_id=principal.tenant_id,
                        kind="audit.recalled",
                        subject=f"recall:{recall_id}",
                        occurred_at=now,
                        payload=recorded,
                        request_id=request_id,
                    )
                )
                # The brand's webhook event commits with the recall, or neither does.
                store.add_outbox([recall_event(principal.tenant_id, recall_id, recorded, now)])
        report = self.recall_report(principal, recall_id)
        if duplicate:
            return replace(report, duplicate=True)
        log.warning(
            "recall", tenant=principal.tenant_id, recall_id=recall_id, units=report.units_affected
        )
        return report

    def _check_scope(self, store: AuditStore, principal: Principal, scope: RecallScope) -> None:
        if scope.gtin and not store.owns_product(principal.tenant_id, scope.gtin):
            field = "RecallRequest.lot.gtin" if scope.kind == "lot" else "RecallRequest.gtin"
            raise NotFound(f"{field}: {scope.gtin} is not a product of yours")
        for key in scope.keys:
            if not store.owns_unit(principal.tenant_id, key):
                field = "RecallRequest.parent" if scope.kind == "parent" else "RecallRequest.codes"
                raise NotFound(f"{field}: {UnitRef.of_key(key)} was not issued to you")

    def recall_report(self, principal: Principal, recall_id: str) -> RecallReport:
        principal.require(Role.AUDITOR)
        with self._storage.reads() as store:
            found = store.recall(principal.tenant_id, recall_id)
            if found is None:
                raise NotFound(f"ReportRequest.recall_id: no recall {recall_id}")
            reason, effective_at = found
            units, markets, regions, since, not_shipped, dispensed = store.recall_report(
                recall_id, effective_at
            )
        return RecallReport(
            recall_id,
            effective_at,
            units,
            markets,
            regions,
            since,
            not_shipped,
            dispensed,
            reason=reason,
        )


def _int_token(token: str, field: str) -> int | None:
    if not token:
        return None
    try:
        return int(token)
    except ValueError:
        raise InvalidArgument(field, "not a token this server gave") from None
