"""The Aggregator's SQL: units (codes and SSCCs), the containment hierarchy and its history,
idempotent event results, pack rules and decommissions. Tables: migration 0007."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aggregator.domain import SSCC_PREFIX, Level
from sealmark.storage.postgres import PostgresUnitOfWork


@dataclass(frozen=True)
class Unit:
    key: str
    state: str
    level: Level
    gtin: str  # empty for an SSCC
    lot: str
    market: str | None


@dataclass(frozen=True)
class Rule:
    capacity: int | None
    homogeneous: str  # none | gtin | lot


@dataclass(frozen=True)
class Decommission:
    unit_key: str
    event_id: str
    previous_state: str
    state: str
    token_id: str
    decided_at: datetime


_ANCESTORS = """
WITH RECURSIVE up(key, depth) AS (
    SELECT parent_key, 1 FROM containment WHERE child_key = %s
    UNION ALL
    SELECT c.parent_key, up.depth + 1 FROM containment c JOIN up ON c.child_key = up.key
    WHERE up.depth < 16
)
SELECT key FROM up ORDER BY depth
"""

_DESCENDANTS = """
WITH RECURSIVE down(key, parent, depth) AS (
    SELECT child_key, parent_key, 1 FROM containment WHERE parent_key = ANY(%s)
    UNION ALL
    SELECT c.child_key, c.parent_key, down.depth + 1
    FROM containment c JOIN down ON c.parent_key = down.key
    WHERE down.depth < 16
)
"""


class AggregationStore:
    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self._uow = uow

    # -- idempotency --------------------------------------------------------------------
    def stored_result(
        self, tenant_id: str, event_id: str
    ) -> tuple[str, str, dict[str, Any]] | None:
        rows = self._uow.execute(
            "SELECT kind, fingerprint, result FROM aggregation_events"
            " WHERE tenant_id = %s AND event_id = %s",
            (tenant_id, event_id),
        )
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def store_result(
        self,
        tenant_id: str,
        event_id: str,
        kind: str,
        fingerprint: str,
        result: dict[str, Any],
        token_id: str,
        at: datetime,
    ) -> None:
        self._uow.execute(
            "INSERT INTO aggregation_events (tenant_id, event_id, kind, fingerprint, result,"
            " token_id, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (tenant_id, event_id, kind, fingerprint, json.dumps(result), token_id, at),
        )

    # -- locking ------------------------------------------------------------------------
    def lock(self, keys: list[str]) -> None:
        """Transaction-scoped advisory locks on unit keys, taken in one order by every writer
        (so two writers never wait on each other in a cycle). Held until commit/rollback."""
        self._uow.execute(
            "SELECT pg_advisory_xact_lock(h) FROM"
            " (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(%s::text[]) k"
            " ORDER BY 1) s",
            (sorted(set(keys)),),
        )

    # -- units --------------------------------------------------------------------------
    def units(self, tenant_id: str, keys: list[str], *, lock: bool = False) -> dict[str, Unit]:
        """The tenant's units among ``keys`` (codes with their product's level; SSCCs)."""
        codes = [k for k in keys if not k.startswith(SSCC_PREFIX)]
        ssccs = [k[len(SSCC_PREFIX) :] for k in keys if k.startswith(SSCC_PREFIX)]
        out: dict[str, Unit] = {}
        suffix = " ORDER BY 1 FOR UPDATE OF c" if lock else ""
        if codes:
            for key, state, level, gtin, lot, market in self._uow.execute(
                "SELECT c.code_key, c.state, p.pack_level, c.gtin, coalesce(c.lot, ''), c.market"
                " FROM codes c JOIN products p ON p.gtin = c.gtin"
                " WHERE c.code_key = ANY(%s) AND c.tenant_id = %s" + suffix,
                (codes, tenant_id),
            ):
                out[key] = Unit(key, state, Level.named(level), gtin, lot, market)
        if ssccs:
            suffix = " ORDER BY 1 FOR UPDATE" if lock else ""
            for sscc, state, level, market in self._uow.execute(
                "SELECT c.sscc, c.state, c.level, c.market FROM ssccs c"
                " WHERE c.sscc = ANY(%s) AND c.tenant_id = %s" + suffix,
                (ssccs, tenant_id),
            ):
                key = SSCC_PREFIX + sscc
                out[key] = Unit(key, state, Level.named(level), "", "", market)
        return out

    def sscc_allocated(self, tenant_id: str, sscc: str) -> bool:
        """Whether ``sscc`` falls in a range allocated to the tenant (AllocateSsccs)."""
        rows = self._uow.execute(
            "SELECT 1 FROM sscc_allocations a WHERE a.tenant_id = %s"
            " AND a.extension_digit = %s::smallint"
            " AND substr(%s, 2, length(a.company_prefix)) = a.company_prefix"
            " AND substr(%s, 2 + length(a.company_prefix), 16 - length(a.company_prefix))::bigint"
            "     BETWEEN a.first_reference AND a.first_reference + a.quantity - 1"
            " LIMIT 1",
            (tenant_id, int(sscc[0]), sscc, sscc),
        )
        return bool(rows)

    def create_sscc(self, tenant_id: str, sscc: str, level: Level, at: datetime) -> Unit:
        self._uow.execute(
            "INSERT INTO ssccs (sscc, tenant_id, level, state, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'commissioned', %s, %s)",
            (sscc, tenant_id, level.label, at, at),
        )
        return Unit(SSCC_PREFIX + sscc, "commissioned", level, "", "", None)

    def set_state(
        self, keys: list[str], state: str, at: datetime, market: str | None = None
    ) -> None:
        """Move units to ``state`` (and, when given, set the market they were shipped to)."""
        codes = [k for k in keys if not k.startswith(SSCC_PREFIX)]
        ssccs = [k[len(SSCC_PREFIX) :] for k in keys if k.startswith(SSCC_PREFIX)]
        market_sql = ", market = %s" if market is not None else ""
        extra: tuple[Any, ...] = (market,) if market is not None else ()
        if codes:
            self._uow.execute(
                f"UPDATE codes SET state = %s, updated_at = %s{market_sql}"
                " WHERE code_key = ANY(%s)",
                (state, at, *extra, codes),
            )
        if ssccs:
            self._uow.execute(
                f"UPDATE ssccs SET state = %s, updated_at = %s{market_sql} WHERE sscc = ANY(%s)",
                (state, at, *extra, ssccs),
            )

    def held(self, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (gtin, lot) pairs are on hold."""
        if not pairs:
            return set()
        gtins, lots = zip(*sorted(pairs), strict=True)
        rows = self._uow.execute(
            "SELECT h.gtin, h.lot FROM lot_holds h"
            " JOIN unnest(%s::text[], %s::text[]) AS q(gtin, lot)"
            " ON h.gtin = q.gtin AND h.lot = q.lot WHERE h.held",
            (list(gtins), list(lots)),
        )
        return {(str(g), str(lot)) for g, lot in rows}

    # -- hierarchy ----------------------------------------------------------------------
    def ancestors(self, key: str) -> list[str]:
        """Parent chain of ``key``, nearest first."""
        return [r[0] for r in self._uow.execute(_ANCESTORS, (key,))]

    def parents(self, keys: list[str]) -> dict[str, str]:
        rows = self._uow.execute(
            "SELECT child_key, parent_key FROM containment WHERE child_key = ANY(%s)", (keys,)
        )
        return {r[0]: r[1] for r in rows}

    def children(self, parent: str) -> list[str]:
        rows = self._uow.execute(
            "SELECT child_key FROM containment WHERE parent_key = %s ORDER BY child_key",
            (parent,),
        )
        return [r[0] for r in rows]

    def descendants(self, roots: list[str]) -> list[tuple[str, str, int]]:
        """(key, parent, depth) of everything below ``roots``, breadth first."""
        rows = self._uow.execute(
            _DESCENDANTS + "SELECT key, parent, depth FROM down ORDER BY depth, key", (roots,)
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    def descendant_page(
        self, root: str, all_levels: bool, after: tuple[int, str] | None, limit: int
    ) -> list[tuple[str, str, int, str, str, str | None]]:
        """One page of (key, parent, depth, state, level, market) below ``root``, ordered by
        (depth, key), strictly after ``after``."""
        depth_cap = "" if all_levels else " WHERE depth = 1"
        after_sql = " AND (depth, key) > (%s, %s)" if after else ""
        where = depth_cap + (after_sql if depth_cap else after_sql.replace(" AND", " WHERE", 1))
        params: tuple[Any, ...] = ([root],) + (after if after else ()) + (limit,)
        rows = self._uow.execute(
            _DESCENDANTS
            + ", page AS (SELECT key, parent, depth FROM down"
            + where
            + " ORDER BY depth, key LIMIT %s)"
            " SELECT p.key, p.parent, p.depth, coalesce(c.state, s.state),"
            " coalesce(pr.pack_level, s.level), coalesce(c.market, s.market)"
            " FROM page p"
            " LEFT JOIN codes c ON c.code_key = p.key"
            " LEFT JOIN products pr ON pr.gtin = c.gtin"
            " LEFT JOIN ssccs s ON 'sscc:' || s.sscc = p.key"
            " ORDER BY p.depth, p.key",
            params,
        )
        return [(r[0], r[1], int(r[2]), r[3], r[4], r[5]) for r in rows]

    def level_counts(self, root: str) -> tuple[dict[str, int], int]:
        """Descendants per level, and how many are direct children."""
        rows = self._uow.execute(
            _DESCENDANTS + "SELECT coalesce(pr.pack_level, s.level), count(*),"
            " count(*) FILTER (WHERE d.depth = 1)"
            " FROM down d LEFT JOIN codes c ON c.code_key = d.key"
            " LEFT JOIN products pr ON pr.gtin = c.gtin"
            " LEFT JOIN ssccs s ON 'sscc:' || s.sscc = d.key GROUP BY 1",
            ([root],),
        )
        return {r[0]: int(r[1]) for r in rows}, sum(int(r[2]) for r in rows)

    def add_links(
        self,
        tenant_id: str,
        parent: str,
        children: list[tuple[str, Level]],
        event_id: str,
        at: datetime,
    ) -> None:
        self._uow.execute(
            "INSERT INTO containment (child_key, tenant_id, parent_key, child_level, event_id,"
            " packed_at) SELECT k, %s, %s, l, %s, %s FROM unnest(%s::text[], %s::smallint[])"
            " AS t(k, l)",
            (
                tenant_id,
                parent,
                event_id,
                at,
                [k for k, _ in children],
                [int(level) for _, level in children],
            ),
        )

    def remove_links(self, parent: str, children: list[str]) -> None:
        self._uow.execute(
            "DELETE FROM containment WHERE parent_key = %s AND child_key = ANY(%s)",
            (parent, children),
        )

    def record_history(
        self,
        tenant_id: str,
        keys: list[str],
        parent: str | None,
        action: str,
        event_id: str,
        at: datetime,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self._uow.execute(
            "INSERT INTO containment_history (tenant_id, unit_key, parent_key, action,"
            " event_id, event_time, attributes) SELECT %s, k, %s, %s, %s, %s, %s"
            " FROM unnest(%s::text[]) k",
            (tenant_id, parent, action, event_id, at, json.dumps(attributes or {}), keys),
        )

    def history(
        self, key: str, after_id: int, limit: int
    ) -> list[tuple[int, str | None, str, str, datetime, dict[str, str]]]:
        rows = self._uow.execute(
            "SELECT id, parent_key, action, event_id, event_time, attributes"
            " FROM containment_history WHERE unit_key = %s AND id > %s ORDER BY id LIMIT %s",
            (key, after_id, limit),
        )
        return [(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    # -- rules --------------------------------------------------------------------------
    def rule(self, tenant_id: str, scope: str) -> Rule | None:
        rows = self._uow.execute(
            "SELECT capacity, homogeneous FROM pack_rules WHERE tenant_id = %s AND scope = %s",
            (tenant_id, scope),
        )
        return Rule(rows[0][0], rows[0][1]) if rows else None

    def set_rule(self, tenant_id: str, scope: str, rule: Rule) -> None:
        self._uow.execute(
            "INSERT INTO pack_rules (tenant_id, scope, capacity, homogeneous)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, scope)"
            " DO UPDATE SET capacity = EXCLUDED.capacity, homogeneous = EXCLUDED.homogeneous",
            (tenant_id, scope, rule.capacity, rule.homogeneous),
        )

    # -- decommissions ------------------------------------------------------------------
    def record_decommissions(
        self,
        tenant_id: str,
        units: list[Unit],
        state: str,
        event_id: str,
        token_id: str,
        at: datetime,
    ) -> None:
        self._uow.execute(
            "INSERT INTO decommissions (tenant_id, unit_key, event_id, previous_state, state,"
            " token_id, decided_at) SELECT %s, k, %s, p, %s, %s, %s"
            " FROM unnest(%s::text[], %s::text[]) AS t(k, p)",
            (
                tenant_id,
                event_id,
                state,
                token_id,
                at,
                [u.key for u in units],
                [u.state for u in units],
            ),
        )

    def open_decommission(self, key: str) -> Decommission | None:
        rows = self._uow.execute(
            "SELECT unit_key, event_id, previous_state, state, token_id, decided_at"
            " FROM decommissions WHERE unit_key = %s AND undone_at IS NULL"
            " ORDER BY decided_at DESC LIMIT 1",
            (key,),
        )
        return Decommission(*rows[0]) if rows else None

    def decommission_members(self, event_id: str, keys: list[str]) -> list[Decommission]:
        rows = self._uow.execute(
            "SELECT unit_key, event_id, previous_state, state, token_id, decided_at"
            " FROM decommissions WHERE event_id = %s AND unit_key = ANY(%s)"
            " AND undone_at IS NULL",
            (event_id, keys),
        )
        return [Decommission(*r) for r in rows]

    def undo_decommissions(self, event_id: str, keys: list[str], at: datetime) -> None:
        self._uow.execute(
            "UPDATE decommissions SET undone_at = %s WHERE event_id = %s AND unit_key = ANY(%s)",
            (at, event_id, keys),
        )
