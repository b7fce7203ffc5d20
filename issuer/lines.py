"""What packaging lines report back: commissioned, scrapped and returned codes (idempotent per
batch and per code), reconciliation per work order, QC lot holds, and SSCC ranges."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from issuer.ports import IssuerStorage
from sealmark.clock import Clock
from sealmark.epcis.events import TZ_OFFSET
from sealmark.epcis.recorded import business_event_id, event_ids
from sealmark.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from sealmark.events import NewEvent
from sealmark.gs1 import make_sscc, normalize_gtin, validate_cset82
from sealmark.lifecycle import CodeState, check_transition
from sealmark.tenancy.model import Principal, validate_market
from sealmark.validators import check_request_id

MAX_BATCH = 10_000
FUTURE_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class ReportBatch:
    batch_id: str
    gtin: str
    serials: list[str]
    line_id: str = ""
    reason: str = ""
    pool_request_id: str = ""
    all_outstanding: bool = False
    # What the line says about when and where (EPCIS eventTime, bizLocation, readPoint).
    event_time: datetime | None = None
    time_zone_offset: str = ""
    location: str = ""
    read_point: str = ""
    market: str = ""

    def where(self, now: datetime) -> dict[str, object]:
        """The event's time (now when the line gave none) and place, as payload fields."""
        facts: dict[str, object] = {"event_time": (self.event_time or now).isoformat()}
        for name in ("time_zone_offset", "location", "read_point", "market"):
            if getattr(self, name):
                facts[name] = getattr(self, name)
        return facts


@dataclass
class Summary:
    batch_id: str
    accepted: int = 0
    already_done: int = 0
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # serial, reason, code
    duplicate: bool = False


@dataclass(frozen=True)
class Reconciliation:
    work_order: str
    pools: int
    allocated: int
    commissioned: int
    scrapped: int
    returned: int
    outstanding: int
    sampled: int

    @property
    def balanced(self) -> bool:
        return self.outstanding == 0 and self.allocated == (
            self.commissioned + self.scrapped + self.returned + self.sampled
        )


@dataclass(frozen=True)
class Hold:
    gtin: str
    lot: str
    held: bool
    reason: str
    changed_at: datetime
    changed_by: str
    epcis_event_id: str = ""


def _unit_name(key: str) -> str:
    return f"SSCC {key[5:]}" if key.startswith("sscc:") else f"code {key}"


def _check_id(value: str, name: str) -> str:
    return check_request_id(value, name)


def _owned_gtin(storage: IssuerStorage, principal: Principal, gtin: str, name: str) -> str:
    gtin14 = normalize_gtin(gtin, name)
    with storage.transaction() as tx:
        if not tx.tenants.get(principal.tenant_id).owns_gtin(gtin14):
            raise PermissionDenied(f"GTIN {gtin14} is not under your company prefixes")
    return gtin14


class LineReports:
    def __init__(self, storage: IssuerStorage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    def report(self, principal: Principal, batch: ReportBatch, target: CodeState) -> Summary:
        """Move a batch of codes to ``target``. Per-code failures are listed, not raised; the
        batch is atomic and its acknowledgement is stored, so a resent batch changes nothing."""
        _check_id(batch.batch_id, "CodeBatch.batch_id")
        gtin = _owned_gtin(self._storage, principal, batch.gtin, "CodeBatch.gtin")
        if batch.all_outstanding:
            if target is not CodeState.RETURNED:
                raise InvalidArgument("CodeBatch.all_outstanding", "only for ReturnCodes")
            _check_id(batch.pool_request_id, "CodeBatch.pool_request_id")
            if batch.serials:
                raise InvalidArgument("CodeBatch.serials", "must be empty with all_outstanding")
        elif not 1 <= len(batch.serials) <= MAX_BATCH:
            raise InvalidArgument("CodeBatch.serials", f"{len(batch.serials)}, want 1..{MAX_BATCH}")
        for serial in batch.serials:
            validate_cset82(serial, "CodeBatch.serials")
        if len(batch.reason) > 200:
            raise InvalidArgument("CodeBatch.reason", "at most 200 characters")
        if batch.time_zone_offset and not TZ_OFFSET.fullmatch(batch.time_zone_offset):
            raise InvalidArgument(
                "CodeBatch.event_time_zone_offset",
                f"{batch.time_zone_offset[:20]!r}, want ±HH:MM such as +08:00",
            )
        if batch.event_time is not None and batch.event_time > self._clock.now() + FUTURE_SLACK:
            raise InvalidArgument("CodeBatch.event_time", "is in the future")
        for name in ("location", "read_point"):
            if len(getattr(batch, name)) > 128:
                raise InvalidArgument(f"CodeBatch.place.{name}", "at most 128 characters")
        if batch.market:
            validate_market(batch.market, "CodeBatch.place.market")
        return self._storage.retrying(lambda: self._report(principal, batch, gtin, target))

    def _report(
        self, principal: Principal, batch: ReportBatch, gtin: str, target: CodeState
    ) -> Summary:
        with self._storage.transaction() as tx:
            store = tx.lines
            stored = store.stored_summary(principal.tenant_id, batch.batch_id)
            if stored is not None:
                if stored.pop("kind", None) != target.value:
                    raise AlreadyExists(f"batch_id {batch.batch_id} was used for another report")
                rejected = [(r[0], r[1], r[2]) for r in stored.pop("rejected")]
                summary = Summary(**stored, rejected=rejected)
                summary.duplicate = True
                return summary
            serials = batch.serials or store.outstanding(principal.tenant_id, batch.pool_request_id)
            keys = [gtin + s for s in dict.fromkeys(serials)]
            found = store.lock_codes(principal.tenant_id, keys)
            held = (
                store.held_lots(gtin, sorted({lot for _, lot, _ in found.values()}))
                if target is CodeState.COMMISSIONED
                else set()
            )
            # A packed code (or one that holds units) cannot be scrapped by a line report: the
            # hierarchy would keep a dead unit. The Aggregator's Replace or Unpack comes first.
            packed = store.packed(keys) if target is CodeState.SCRAPPED else {}
            summary, move = Summary(batch.batch_id), []
            for key in keys:
                serial = key[14:]
                if key not in found:
                    summary.rejected.append(
                        (serial, f"code {key} was not issued to you", "NOT_FOUND")
                    )
                    continue
                state, lot, _request = found[key]
                if state == target.value:
                    summary.already_done += 1
                elif lot in held:
                    summary.rejected.append(
                        (serial, f"lot {lot} is on hold", "FAILED_PRECONDITION")
                    )
                elif key in packed:
                    where = (
                        f"is packed in {_unit_name(packed[key])}" if packed[key] else "holds units"
                    )
                    summary.rejected.append(
                        (
                            serial,
                            f"code {key} {where}: replace or unpack it before scrapping it",
                            "FAILED_PRECONDITION",
                        )
                    )
                else:
                    try:
                        check_transition(key, CodeState(state), target)
                    except FailedPrecondition as exc:
                        summary.rejected.append((serial, str(exc), "FAILED_PRECONDITION"))
                        continue
                    move.append(key)
            now = self._clock.now()
            store.set_state(move, target.value, now)
            summary.accepted = len(move)
            if move:
                kind = f"codes.{target.value}"
                payload: dict[str, object] = {
                    "gtin": gtin,
                    "serials": [k[14:] for k in move],
                    "line_id": batch.line_id,
                    "reason": batch.reason,
                    **batch.where(now),
                }
                # The eventIDs the export writes for this batch (one per lot and expiry),
                # which the transparency log's entry commits to.
                if target is CodeState.COMMISSIONED:
                    facts = store.lot_facts(principal.tenant_id, move)
                    ids = event_ids(kind, payload, now, facts=lambda _gtin, _serials: facts)
                    payload["epcis_event_ids"] = ids
                elif target is CodeState.SCRAPPED:
                    payload["epcis_event_id"] = business_event_id(kind, payload, now)
                tx.events.append(
                    NewEvent(
                        tenant_id=principal.tenant_id,
                        kind=kind,
                        subject=f"batch:{batch.batch_id}",
                        occurred_at=now,
                        payload=payload,
                        request_id=batch.batch_id,
                    )
                )
            store.store_summary(
                principal.tenant_id,
                batch.batch_id,
                target.value,
                {**asdict(summary), "kind": target.value},
            )
            tx.commit()
        return summary

    def reconcile(self, principal: Principal, work_order: str) -> Reconciliation:
        _check_id(work_order, "ReconcileRequest.work_order")
        with self._storage.transaction() as tx:
            pools, counts = tx.lines.reconcile(principal.tenant_id, work_order)
        total = sum(counts.values())
        return Reconciliation(
            work_order=work_order,
            pools=pools,
            allocated=total,
            commissioned=total
            - sum(counts.get(s, 0) for s in ("allocated", "scrapped", "returned", "sampled")),
            scrapped=counts.get("scrapped", 0),
            returned=counts.get("returned", 0),
            outstanding=counts.get("allocated", 0),
            sampled=counts.get("sampled", 0),
        )

    def set_hold(self, principal: Principal, gtin: str, lot: str, reason: str, held: bool) -> Hold:
        gtin14 = _owned_gtin(self._storage, principal, gtin, "LotHoldRequest.gtin")
        validate_cset82(lot, "LotHoldRequest.lot")
        if held and not reason.strip():
            raise InvalidArgument("LotHoldRequest.reason", "required when holding a lot")
        if len(reason) > 200:
            raise InvalidArgument("LotHoldRequest.reason", "at most 200 characters")
        now = self._clock.now()
        with self._storage.transaction() as tx:
            tx.products.get(gtin14)
            store = tx.lines
            if not held and store.recalled_lot(principal.tenant_id, gtin14, lot):
                raise FailedPrecondition(
                    f"lot {lot} of GTIN {gtin14} was recalled: its hold cannot be released"
                )
            store.set_hold(principal.tenant_id, gtin14, lot, held, reason, now, principal.token_id)
            kind = "lot.held" if held else "lot.released"
            payload: dict[str, object] = {"gtin": gtin14, "lot": lot, "reason": reason}
            payload["event_time"] = now.isoformat()
            payload["epcis_event_id"] = business_event_id(kind, payload, now)
            tx.events.append(
                NewEvent(
                    tenant_id=principal.tenant_id,
                    kind=kind,
                    subject=f"lot:{gtin14}:{lot}",
                    occurred_at=now,
                    payload=payload,
                )
            )
            tx.commit()
        return Hold(
            gtin14, lot, held, reason, now, principal.token_id, str(payload["epcis_event_id"])
        )

    def allocate_ssccs(
        self,
        principal: Principal,
        request_id: str,
        company_prefix: str,
        extension_digit: int,
        quantity: int,
    ) -> list[str]:
        """Mint SSCCs from a reserved range; a retry with the same request id returns the same."""
        _check_id(request_id, "AllocateSsccsRequest.request_id")
        if not 0 <= extension_digit <= 9:
            raise InvalidArgument(
                "AllocateSsccsRequest.extension_digit", f"{extension_digit}, want 0..9"
            )
        if not 1 <= quantity <= 100_000:
            raise InvalidArgument("AllocateSsccsRequest.quantity", f"{quantity}, want 1..100000")
        with self._storage.transaction() as tx:
            tenant = tx.tenants.get(principal.tenant_id)
            if company_prefix not in tenant.company_prefixes:
                raise InvalidArgument(
                    "AllocateSsccsRequest.company_prefix",
                    f"{company_prefix!r} is not one of your company prefixes",
                )
            store = tx.lines
            existing = store.allocation(principal.tenant_id, request_id)
            if existing is None:
                first = store.reserve_references(
                    principal.tenant_id, request_id, company_prefix, extension_digit, quantity
                )
                if first + quantity > 10 ** (16 - len(company_prefix)):
                    raise FailedPrecondition(
                        f"SSCC serial references of prefix {company_prefix} are exhausted"
                    )
                tx.events.append(
                    NewEvent(
                        tenant_id=principal.tenant_id,
                        kind="ssccs.allocated",
                        subject=f"sscc:{request_id}",
                        occurred_at=self._clock.now(),
                        payload={
                            "prefix": company_prefix,
                            "extension": extension_digit,
                            "first": first,
                            "count": quantity,
                        },
                        request_id=request_id,
                    )
                )
                tx.commit()
                existing = (company_prefix, extension_digit, first, quantity)
        prefix, extension, first, count = existing
        if (prefix, extension, count) != (company_prefix, extension_digit, quantity):
            raise FailedPrecondition(f"request_id {request_id} was used for another allocation")
        return [make_sscc(extension, prefix, ref) for ref in range(first, first + count)]
