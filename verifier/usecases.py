"""Verification: one scanned payload in, one verdict with its reasons out.

Order of work, cheapest and most decisive first: parse (no I/O), rate limit, signature (a
forgery never reaches the database) or, for a compact-profile product, its MAC (the product's
profile comes from a per-process cache; a forged MAC never reaches the codes), the stored code
(one primary-key probe), the hidden PIN, the serial's scan history (Redis, or the scan log),
then the verdict. The scan is queued for the scan log and alerts go to PostgreSQL and the
tenant's Redis stream. Webhook events go to the outbox with the write they report: an alert's
in the alert's transaction, a first genuine scan's in the scan log's batch (verifier.outbox).

The Verifier holds its ports (verifier.ports: the stored codes, the scan state) and the scan log
(verifier.scanlog), the clock and the PIN and MAC schemes; sealmark_app.root.verifier builds it.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from nacl.signing import VerifyKey

from sealmark.clock import Clock
from sealmark.crypto.mac import MacScheme
from sealmark.crypto.pins import PinScheme
from sealmark.crypto.signature import load_key
from sealmark.errors import InvalidArgument, NotFound, ResourceExhausted
from sealmark.gs1.code import GS1Code
from sealmark.lifecycle import CodeState
from sealmark.webhooks.events import alert_event
from verifier.coalesce import Coalescer
from verifier.domain import (
    ACTIVE_STATES,
    MAX_PAYLOAD_BYTES,
    MAX_PIN_CHARS,
    ClientContext,
    History,
    Product,
    Reason,
    Rules,
    Verdict,
    Verification,
    checked_context,
    clone_reasons,
    decide,
    reason,
    state_reasons,
)
from verifier.ports import (
    MAX_CODES,
    AlertRow,
    Limits,
    ProductFacts,
    PublicKey,
    ScanRow,
    ScanStateStore,
    StoredCode,
    VerifierStorage,
    VerifierStore,
)
from verifier.proofs import Cached, Proofs
from verifier.scanlog import ScanLog

ALERT_REPEAT_S = 3600  # one alert per kind and serial (or client) per hour
# Reasons that a client producing many of is guessing serials or PINs.
GUESSES = {"never_issued", "bad_signature", "bad_mac", "unknown_key", "pin_wrong"}
# Reasons that raise an alert, by alert kind.
ALERTS = {
    "bad_signature": "counterfeit",
    "bad_mac": "counterfeit",
    "unknown_key": "counterfeit",
    "never_issued": "counterfeit",
    "never_commissioned": "counterfeit",
    "returned": "counterfeit",
    "scrapped": "counterfeit",
    "pin_reused": "pin_reused",
    "too_many_sessions": "suspect_clone",
    "impossible_travel": "suspect_clone",
    "diverted": "diversion",
    "recalled": "recalled_scan",  # the brand wants to know where recalled units still are
}


DEFAULT_RULES = Rules()


def new_verification_id() -> str:
    """A verification id: 16 hex digits from the operating system's randomness."""
    return secrets.token_hex(8)


class Verifier:
    """The consumer's question, on its ports. ``macs`` None: no SEALMARK_MAC_SECRET here, so
    compact-profile codes are refused (FailedPrecondition). ``new_id`` names verifications."""

    def __init__(
        self,
        storage: VerifierStorage,
        state: ScanStateStore,
        scan_log: ScanLog,
        *,
        clock: Clock,
        pins: PinScheme,
        macs: MacScheme | None,
        new_id: Callable[[], str] = new_verification_id,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._pins = pins
        self._new_id = new_id
        self._state = state
        self._log = scan_log
        self._prefixes = Cached(lambda _: self._read(lambda s: s.prefixes()))
        self._rules = Cached(lambda t: self._read(lambda s: s.rules(t)))
        self._products = Cached(lambda gtin: self._read(lambda s: s.product(gtin)))
        self._proofs = Proofs(Cached(self._load_keys), self._products, macs)
        # The codes scanned together by this process's threads are read in one statement.
        self._codes: Coalescer[str, StoredCode | None] = Coalescer(
            self._read_codes, max_batch=MAX_CODES
        )

    def close(self) -> None:
        """Write what the scan log holds and stop it, then release the scan state; safe to
        call twice."""
        self._log.close()
        self._state.close()

    # -- the question --------------------------------------------------------------------
    def verify(
        self,
        payload: str,
        pin: str | None,
        context: ClientContext,
        *,
        parsed: GS1Code | InvalidArgument | None = None,
    ) -> Verification:
        """The verdict on one scan. InvalidArgument (naming the field) for a malformed
        request, ResourceExhausted for a client over its limits, Unavailable when the scan
        cannot be recorded; anything else is a verdict. ``parsed``: what a caller that had to
        parse ``payload`` already (``GS1Code.from_scan(payload, today=self.today())``) got,
        the code or the InvalidArgument raised, so a scan is parsed once; None: parsed here."""
        if not payload:
            raise InvalidArgument("payload", "required: the scanned code")
        if len(payload.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES:
            raise InvalidArgument("payload", f"over {MAX_PAYLOAD_BYTES} bytes")
        if pin is not None and len(pin) > MAX_PIN_CHARS:
            raise InvalidArgument("pin", f"over {MAX_PIN_CHARS} characters")
        context = checked_context(context, "context")
        now = self._clock.now()
        scan = _Scan(self._new_id(), now, context)
        if parsed is None:
            try:
                parsed = GS1Code.from_scan(payload, today=now.date())
            except InvalidArgument as exc:
                parsed = exc
        if isinstance(parsed, InvalidArgument):
            return self._answer(scan, [reason("unparseable", {"detail": parsed.message})])
        code = scan.code = parsed
        tenant_id = self._tenant_of(code.gtin)
        rules: Rules = self._rules.get(tenant_id) if tenant_id else DEFAULT_RULES
        if tenant_id is None:
            return self._answer(scan, [reason("not_our_code", {"gtin": code.gtin})], rules)
        scan.tenant_id = tenant_id
        signature = self._proofs.check(tenant_id, code)
        if signature is not None and signature.verdict is Verdict.COUNTERFEIT:
            return self._answer(scan, [signature], rules)  # a forgery never reaches the database
        stored = self._codes.submit(code.gtin + code.serial)
        if stored is None or stored.tenant_id != tenant_id:
            return self._answer(scan, [reason("never_issued", {})], rules)
        scan.stored = stored
        reasons = state_reasons(CodeState(stored.state), stored.expiry, now.date())
        if stored.state == CodeState.RECALLED.value:  # rare: one more read for the why
            with self._storage.reads() as store:
                why = store.recall_reason(code.gtin + code.serial)
            if why:
                reasons = [
                    reason("recalled", {"reason": why}) if r.code == "recalled" else r
                    for r in reasons
                ]
        if signature is not None:
            reasons.append(signature)  # typed-in HRI: checked against the issued serials only
        limits = _limits(tenant_id, context, rules)
        if pin is not None and stored.pin_hash is not None:
            # PIN guessing must meet the limits before any PIN is looked at.
            self._admit(context, rules, tenant_id)
            limits = Limits(limits.client, -1, limits.guesses)
            reasons.append(self._check_pin(scan, code, stored, pin))
        active = CodeState(stored.state) in ACTIVE_STATES and not any(
            r.code == "expired" for r in reasons
        )
        # Admission and the scan state in one Redis round trip: on this path a refused client
        # has cost a parse, a signature check and one primary-key read, never a write.
        history, from_redis, refused = self._state.record(
            code.gtin + code.serial,
            context,
            scan.session,
            active,
            now,
            self._rebuild,
            limits,
        )
        if refused:
            raise ResourceExhausted(f"slow down: {refused}")
        scan.history, scan.active, scan.degraded = history, active, not from_redis
        reasons += clone_reasons(rules, history, context, now)
        if stored.market and context.country and context.country != stored.market[:2]:
            reasons.append(reason("diverted", {"market": stored.market, "region": context.region}))
        if active and history.first_at is not None:
            reasons.append(
                reason(
                    "seen_before",
                    {
                        "first_at": history.first_at.isoformat(),
                        "first_region": history.first_region,
                    },
                )
            )
        return self._answer(scan, reasons, rules, admitted=True)

    def admit(self, context: ClientContext) -> None:
        """Count one request of this client against the default limits, before costly work
        that precedes :meth:`verify` (an image to decode). ResourceExhausted when over."""
        self._admit(checked_context(context, "context"), DEFAULT_RULES, None)

    def today(self) -> date:
        return self._clock.now().date()

    # -- public keys and health -------------------------------------------------------------
    def public_keys(self, tenant_id: str | None, gtin: str | None) -> tuple[str, list[PublicKey]]:
        """(owner, keys): the public keys of a tenant, or of the tenant owning ``gtin``."""
        owner = tenant_id or (self._tenant_of(gtin) if gtin else None)
        if owner is None:
            raise NotFound(f"no brand owns GTIN {gtin}" if gtin else "tenant_id or gtin required")
        with self._storage.reads() as store:
            store.check_tenant(owner)
            return owner, store.public_keys(owner)

    def key_set(self, tenant_id: str | None, gtin: str | None) -> dict[str, Any]:
        """:meth:`public_keys`, JSON-ready (the HTTP face; offline checks)."""
        owner, keys = self.public_keys(tenant_id, gtin)
        return {
            "tenant": owner,
            "keys": [
                {
                    "key_id": k.key_id,
                    "algorithm": "Ed25519",
                    "public_key": base64.urlsafe_b64encode(k.public_key).decode().rstrip("="),
                    "created_at": _iso(k.created_at),
                    "retired_at": _iso(k.retired_at),
                    "revoked_at": _iso(k.revoked_at),
                }
                for k in keys
            ],
        }

    def health(self) -> dict[str, str]:
        """``status`` ok or degraded, and which backend: ``redis`` (the scan state: answers
        come from the scan log) or ``postgres`` (the scan log's writes are being retried)."""
        redis_down, log_failing = self._state.degraded, self._log.failing
        return {
            "status": "degraded" if redis_down or log_failing else "ok",
            "redis": "down" if redis_down else "up",
            "postgres": "down" if log_failing else "up",
        }

    def set_rules(self, tenant_id: str, rules: Rules) -> None:
        """Replace the tenant's rules (NotFound for an unknown tenant); this process applies
        them at once, the others within ``CACHE_TTL_S``."""
        with self._storage.transaction() as store:
            store.check_tenant(tenant_id)
            store.set_rules(tenant_id, rules, self._clock.now())
        self._rules.get(tenant_id, fresh=True)

    def flush(self) -> int:
        """Write the queued scans now (tests, shutdown)."""
        return self._log.flush()

    # -- steps ------------------------------------------------------------------------------
    def _read(self, query: Callable[[VerifierStore], Any]) -> Any:
        with self._storage.reads() as store:
            return query(store)

    def _read_codes(self, keys: list[str]) -> list[StoredCode | None]:
        found: dict[str, StoredCode] = self._read(lambda s: s.codes(keys))
        return [found.get(k) for k in keys]

    def _load_keys(self, tenant_id: str) -> dict[str, VerifyKey]:
        stored: list[PublicKey] = self._read(lambda s: s.public_keys(tenant_id))
        return {k.key_id: load_key(k.public_key) for k in stored}

    def _tenant_of(self, gtin: str) -> str | None:
        prefixes: dict[str, str] = self._prefixes.get("")
        body = gtin[1:]
        for length in range(min(12, len(body)), 3, -1):
            owner = prefixes.get(body[:length])
            if owner is not None:
                return owner
        return None

    def _admit(self, context: ClientContext, rules: Rules, tenant_id: str | None) -> None:
        refused = self._state.admit(_limits(tenant_id, context, rules))
        if refused:
            raise ResourceExhausted(f"slow down: {refused}")

    def _check_pin(self, scan: _Scan, code: GS1Code, stored: StoredCode, pin: str) -> Reason:
        key = code.gtin + code.serial
        if not pin.isascii() or not pin.isdigit() or stored.pin_hash is None:
            return reason("pin_wrong", {})
        if not self._pins.matches(key, pin, stored.pin_hash):
            return reason("pin_wrong", {})
        with self._storage.transaction() as store:
            earlier = store.claim_pin(
                key,
                stored.tenant_id,
                scan.verification_id,
                scan.session,
                scan.context.region,
                scan.now,
            )
        if earlier is None or earlier[1] == scan.session:
            # The first entry, or the same session entering it again (a reload, a double tap).
            scan.pin_confirmed = True
            return reason("pin_confirmed", {})
        return reason("pin_reused", {"first_used_at": earlier[0].isoformat()})

    def _rebuild(self, code_key: str) -> tuple[History, set[str]]:
        """A serial's history from the scan log, plus its scans still queued here."""
        with self._storage.reads() as store:
            history, sessions = store.history(code_key)
        for row in self._log.pending(code_key):
            sessions.add(row.session_key)
            if row.active and (history.first_at is None or row.verified_at < history.first_at):
                history = replace(history, first_at=row.verified_at, first_region=row.region)
            if row.latitude is not None and (
                history.last_at is None or row.verified_at > history.last_at
            ):
                history = replace(
                    history,
                    last_at=row.verified_at,
                    last_latitude=row.latitude,
                    last_longitude=row.longitude,
                )
        return replace(history, sessions=len(sessions)), sessions

    def _answer(
        self,
        scan: _Scan,
        reasons: list[Reason],
        rules: Rules = DEFAULT_RULES,
        *,
        admitted: bool = False,
    ) -> Verification:
        """The verification for ``reasons``: alerts raised, scan queued for the log. A scan
        answered before its state was recorded (``admitted`` False) meets the limits here."""
        if not admitted:
            self._admit(scan.context, rules, scan.tenant_id)
        verdict, risk = decide(reasons)
        code, stored, history = scan.code, scan.stored, scan.history
        key = code.gtin + code.serial if code else None
        alerts = self._raise_alerts(scan, reasons, key)
        if any(r.code in GUESSES for r in reasons):
            client = _client_key(scan.tenant_id, scan.context)
            count = self._state.guessed(client, rules.guess_window_s)
            if count > rules.guess_limit and self._state.first_time(
                f"guess:{client}", rules.guess_window_s
            ):
                alerts.append(
                    self._alert(
                        scan,
                        "serial_guessing",
                        key,
                        {"client": scan.context.client, "signals": count},
                    )
                )
        self._log.append(
            ScanRow(
                scan.verification_id,
                scan.tenant_id,
                key,
                verdict.value,
                [r.code for r in reasons],
                risk,
                scan.session,
                scan.context.region,
                scan.context.latitude,
                scan.context.longitude,
                scan.active,
                scan.now,
            )
        )
        product = None
        if stored is not None and code is not None:
            facts: ProductFacts | None = self._products.get(code.gtin)
            product = Product(
                code.gtin,
                facts.name if facts else "",
                stored.lot,
                stored.expiry,
                stored.production_date,
                facts.brand if facts else "",
            )
        return Verification(
            verification_id=scan.verification_id,
            verdict=verdict,
            reasons=reasons,
            risk_score=risk,
            verified_at=scan.now,
            serial=code.serial if code else "",
            product=product,
            first_verified_at=history.first_at if history else None,
            first_verified_region=history.first_region if history else "",
            session_count=history.sessions if history else 0,
            pin_available=stored is not None and stored.pin_hash is not None,
            pin_confirmed=scan.pin_confirmed,
            degraded=scan.degraded or self._state.degraded,
            tenant_id=scan.tenant_id or "",
            alerts=alerts,
        )

    def _raise_alerts(self, scan: _Scan, reasons: list[Reason], key: str | None) -> list[str]:
        raised = []
        for given in reasons:
            kind = ALERTS.get(given.code)
            if kind is None:
                continue
            subject = key or scan.context.client
            # A PIN reuse is alerted every time: each one is a separate copy being opened.
            if kind != "pin_reused" and not self._state.first_time(
                f"{kind}:{subject}", ALERT_REPEAT_S
            ):
                continue
            raised.append(self._alert(scan, kind, key, {"reason": given.code, **given.params}))
        return raised

    def _alert(self, scan: _Scan, kind: str, key: str | None, details: dict[str, Any]) -> str:
        details = {**details, "region": scan.context.region}
        with self._storage.transaction() as store:
            alert_id = store.add_alert(
                AlertRow(scan.tenant_id, kind, key, scan.verification_id, details, scan.now)
            )
            # The brand's webhook event commits with the alert, or neither does.
            event = (
                alert_event(scan.tenant_id, kind, alert_id, key, details, scan.now)
                if scan.tenant_id
                else None
            )
            if event is not None:
                store.add_outbox([event])
        if scan.tenant_id:
            self._state.publish_alert(scan.tenant_id, alert_id, kind)
        return kind


class _Scan:
    """What one verification has learnt so far."""

    def __init__(self, verification_id: str, now: datetime, context: ClientContext) -> None:
        self.verification_id = verification_id
        self.now = now
        self.context = context
        self.session = context.session_key or "anonymous"
        self.code: GS1Code | None = None
        self.tenant_id: str | None = None
        self.stored: StoredCode | None = None
        self.history: History | None = None
        self.active = False
        self.degraded = False
        self.pin_confirmed = False


def _limits(tenant_id: str | None, context: ClientContext, rules: Rules) -> Limits:
    return Limits(_client_key(tenant_id, context), rules.rate_per_minute, rules.guess_limit)


def _client_key(tenant_id: str | None, context: ClientContext) -> str:
    """Whom limits count: a client address per brand (scans of no brand's codes share one)."""
    return f"{tenant_id or '-'}:{context.client or 'unknown'}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
