"""The Verifier's PostgreSQL adapter (ports :class:`~verifier.ports.VerifierStorage` and
:class:`~verifier.ports.ScanSink`): the code behind a scan, tenants by prefix, public keys, scan
history, first PIN uses, alerts and rules. Tables: migrations 0001 (codes), 0002 (keys), 0009.
Driver errors become Sealmark errors in sealmark.storage.postgres (``translate_db_error``)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import datetime

import psycopg2

from sealmark.storage.postgres import (
    PostgresDatabase,
    PostgresUnitOfWork,
    StoreOpener,
    copy_value,
    translate_db_error,
)
from sealmark.storage.postgres_outbox import write_outbox
from sealmark.webhooks.events import OutboxEvent
from verifier.domain import History, Rules
from verifier.outbox import first_scan_events
from verifier.ports import MAX_CODES, AlertRow, ProductFacts, PublicKey, ScanRow, StoredCode

__all__ = ["MAX_CODES", "PostgresVerifierStorage", "PostgresVerifierStore"]


class PostgresVerifierStorage(StoreOpener["PostgresVerifierStore"]):
    """:class:`~verifier.ports.VerifierStorage` and :class:`~verifier.ports.ScanSink` on one
    database."""

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(
            database, lambda uow, writable: PostgresVerifierStore(uow, writable=writable)
        )

    def append_scans(self, scans: Sequence[ScanRow]) -> None:
        with self._db.unit_of_work() as uow:
            PostgresVerifierStore(uow).append_scans(scans)
            uow.commit()


class PostgresVerifierStore:
    """:class:`~verifier.ports.VerifierStore` in one unit of work (``writable`` False: a
    reads() unit, where every statement commits on its own, so writes are refused)."""

    def __init__(self, uow: PostgresUnitOfWork, *, writable: bool = True) -> None:
        self._uow = uow
        self._writable = writable

    def _writes(self) -> None:
        if not self._writable:
            raise RuntimeError("a reads() block writes nothing: use transaction()")

    def codes(self, code_keys: Sequence[str]) -> dict[str, StoredCode]:
        """The stored codes among ``code_keys``, by key: one statement of primary-key probes
        (the scans that arrive together, see coalesce.py), at most :data:`MAX_CODES` keys.

        One prepared statement per number of keys, ``code_key IN ($1, …, $n)``: its generic
        plan probes only the partitions of those keys, where ``= ANY($1)`` would probe all 16
        (or be planned again at each call). The product and brand names come from
        :meth:`product`, cached by the caller: joining them here doubled the statement's cost
        on the server."""
        keys = tuple(code_keys)
        if not keys:
            return {}
        if len(keys) > MAX_CODES:
            raise ValueError(f"at most {MAX_CODES} codes per read, not {len(keys)}")
        rows = self._uow.execute_prepared(
            f"ver_codes_{len(keys)}",
            "SELECT code_key, tenant_id, state, coalesce(lot, ''), expiry, production_date,"
            " key_id, pin_hash, market FROM codes WHERE code_key IN ("
            + ", ".join(f"${n}::text" for n in range(1, len(keys) + 1))
            + ")",
            keys,
        )
        return {
            r[0]: StoredCode(
                r[1], r[2], r[3], r[4], r[5], r[6], bytes(r[7]) if r[7] is not None else None, r[8]
            )
            for r in rows
        }

    def product(self, gtin: str) -> ProductFacts | None:
        """The product's name, its brand's and its code profile, for GTIN ``gtin``."""
        rows = self._uow.execute(
            "SELECT p.name, t.name, p.code_profile FROM products p"
            " JOIN tenants t ON t.id = p.tenant_id WHERE p.gtin = %s",
            (gtin,),
        )
        return ProductFacts(rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def recall_reason(self, code_key: str) -> str | None:
        """What the brand told consumers when it recalled the code (Audit's Recall)."""
        rows = self._uow.execute(
            "SELECT r.reason FROM recalled_units u JOIN recalls r USING (recall_id)"
            " WHERE u.unit_key = %s",
            (code_key,),
        )
        return str(rows[0][0]) if rows else None

    def prefixes(self) -> dict[str, str]:
        """company prefix → tenant id, for every tenant."""
        rows = self._uow.execute("SELECT prefix, tenant_id FROM tenant_prefixes")
        return {r[0]: r[1] for r in rows}

    def check_tenant(self, tenant_id: str) -> None:
        self._uow.tenants.get(tenant_id)  # NotFound for an unknown tenant

    def public_keys(self, tenant_id: str) -> list[PublicKey]:
        """The tenant's signing keys (public halves), oldest first."""
        rows = self._uow.execute(
            "SELECT key_id, public_key, created_at, retired_at, revoked_at"
            " FROM signing_keys WHERE tenant_id = %s ORDER BY created_at, key_id",
            (tenant_id,),
        )
        return [PublicKey(r[0], bytes(r[1]), r[2], r[3], r[4]) for r in rows]

    def rules(self, tenant_id: str) -> Rules:
        rows = self._uow.execute(
            "SELECT max_sessions, travel_kmh, travel_min_km, guess_limit, guess_window_s,"
            " rate_per_minute FROM verify_rules WHERE tenant_id = %s",
            (tenant_id,),
        )
        if not rows:
            return Rules()
        r = rows[0]
        return Rules(int(r[0]), float(r[1]), float(r[2]), int(r[3]), int(r[4]), int(r[5]))

    def set_rules(self, tenant_id: str, rules: Rules, at: datetime) -> None:
        self._writes()
        self._uow.execute(
            "INSERT INTO verify_rules (tenant_id, max_sessions, travel_kmh, travel_min_km,"
            " guess_limit, guess_window_s, rate_per_minute, changed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id) DO UPDATE SET"
            " max_sessions = EXCLUDED.max_sessions, travel_kmh = EXCLUDED.travel_kmh,"
            " travel_min_km = EXCLUDED.travel_min_km, guess_limit = EXCLUDED.guess_limit,"
            " guess_window_s = EXCLUDED.guess_window_s,"
            " rate_per_minute = EXCLUDED.rate_per_minute, changed_at = EXCLUDED.changed_at",
            (
                tenant_id,
                rules.max_sessions,
                rules.travel_kmh,
                rules.travel_min_km,
                rules.guess_limit,
                rules.guess_window_s,
                rules.rate_per_minute,
                at,
            ),
        )

    def history(self, code_key: str) -> tuple[History, set[str]]:
        """A serial's scan history rebuilt from the scan log (when Redis has none): the first
        verification, the last located scan and the distinct sessions."""
        rows = self._uow.execute_prepared(
            "ver_history",
            "SELECT (SELECT verified_at FROM scans WHERE code_key = $1::text AND active"
            "        ORDER BY verified_at LIMIT 1),"
            " (SELECT region FROM scans WHERE code_key = $1::text AND active"
            "        ORDER BY verified_at LIMIT 1),"
            " l.verified_at, l.latitude, l.longitude,"
            " ARRAY(SELECT DISTINCT session_key FROM scans WHERE code_key = $1::text)"
            " FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT verified_at, latitude, longitude"
            "  FROM scans WHERE code_key = $1::text AND latitude IS NOT NULL"
            "  ORDER BY verified_at DESC LIMIT 1) l ON true",
            (code_key,),
        )
        first_at, first_region, last_at, lat, lon, sessions = rows[0]
        history = History(
            first_at=first_at,
            first_region=first_region or "",
            last_at=last_at,
            last_latitude=lat,
            last_longitude=lon,
            sessions=len(sessions),
        )
        return history, set(sessions)

    def pin_use(self, code_key: str) -> tuple[datetime, str] | None:
        rows = self._uow.execute_prepared(
            "ver_pin_use",
            "SELECT used_at, session_key FROM pin_uses WHERE code_key = $1::text",
            (code_key,),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def claim_pin(
        self,
        code_key: str,
        tenant_id: str,
        verification_id: str,
        session_key: str,
        region: str,
        at: datetime,
    ) -> tuple[datetime, str] | None:
        """Record the first correct PIN entry. None when this is it; otherwise the earlier
        use (time, session), which makes this entry a reuse."""
        self._writes()
        rows = self._uow.execute_prepared(
            "ver_claim_pin",
            "INSERT INTO pin_uses (code_key, tenant_id, verification_id, session_key, region,"
            " used_at) VALUES ($1::text, $2::text, $3::text, $4::text, $5::text,"
            " $6::timestamptz) ON CONFLICT (code_key) DO NOTHING RETURNING used_at",
            (code_key, tenant_id, verification_id, session_key, region, at),
        )
        return None if rows else self.pin_use(code_key)

    def append_scans(self, scans: Sequence[ScanRow]) -> None:
        """Append a batch with one COPY into a staging table; a verification id already stored
        is not stored twice (a batch retried after an unknown commit outcome)."""
        self._writes()
        text = "".join(
            "\t".join(
                map(
                    copy_value,
                    (
                        s.verification_id,
                        s.tenant_id,
                        s.code_key or "",  # '' when unparseable (migration 0019)
                        s.verdict,
                        "{" + ",".join(_array_item(r) for r in s.reasons) + "}",
                        s.risk_score,
                        s.session_key,
                        s.region,
                        s.latitude,
                        s.longitude,
                        "t" if s.active else "f",
                        s.verified_at,
                    ),
                )
            )
            + "\n"
            for s in scans
        )
        self._uow.execute(
            "CREATE TEMP TABLE IF NOT EXISTS scans_in (LIKE scans) ON COMMIT DELETE ROWS"
        )
        try:
            with self._uow.connection.cursor() as cur:
                cur.copy_expert("COPY scans_in FROM STDIN", io.StringIO(text))
        except psycopg2.Error as exc:
            raise translate_db_error(exc) from exc
        self._uow.execute(
            "INSERT INTO scans SELECT * FROM scans_in"
            " ON CONFLICT (code_key, verification_id) DO NOTHING"
        )
        write_outbox(self._uow, first_scan_events(scans))

    def add_outbox(self, events: Sequence[OutboxEvent]) -> int:
        self._writes()
        return write_outbox(self._uow, events)

    def add_alert(self, alert: AlertRow) -> int:
        self._writes()
        rows = self._uow.execute(
            "INSERT INTO alerts (tenant_id, kind, code_key, verification_id, details, raised_at)"
            " VALUES (%s, %s, %s, %s, %s::jsonb, %s) RETURNING id",
            (
                alert.tenant_id or "",  # '' when no tenant is known (migration 0019)
                alert.kind,
                alert.code_key,
                alert.verification_id,
                json.dumps(alert.details),
                alert.raised_at,
            ),
        )
        return int(rows[0][0])


def _array_item(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
