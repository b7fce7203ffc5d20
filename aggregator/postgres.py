"""The Aggregator's storage port on PostgreSQL: units (codes and SSCCs), the containment
hierarchy and its history, idempotent event results, pack rules and decommissions. Tables:
migration 0007 (and 0008, 0011, 0013 for state copies, packs and the lock functions)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from aggregator.domain import ChildGroup, Level, SsccRange
from aggregator.ports import Decommission, HistoryEntry, Rule, StoredResult, Unit
from sealmark.errors import Unavailable
from sealmark.events import NewEvent
from sealmark.storage.postgres import PostgresDatabase, PostgresUnitOfWork, StoreOpener
from sealmark.tenancy.model import Tenant
from sealmark.units import SSCC_PREFIX

T = TypeVar("T")


_UP = """
WITH RECURSIVE up(key, depth) AS (
    SELECT parent_key, 1 FROM containment WHERE child_key = $1::text
    UNION ALL
    SELECT c.parent_key, up.depth + 1 FROM containment c JOIN up ON c.child_key = up.key
    WHERE up.depth < 16
)
"""

_DESCENDANTS = """
WITH RECURSIVE down(key, parent, depth) AS (
    SELECT child_key, parent_key, 1 FROM containment WHERE parent_key = ANY($1::text[])
    UNION ALL
    SELECT c.child_key, c.parent_key, down.depth + 1
    FROM containment c JOIN down ON c.parent_key = down.key
    WHERE down.depth < 16
)
"""


class PostgresAggregationStorage(StoreOpener["PostgresAggregationStore"]):
    """:class:`aggregator.ports.AggregationStorage` on one database."""

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database, lambda uow, _writable: PostgresAggregationStore(uow))


class PostgresAggregationStore:
    """:class:`aggregator.ports.AggregationStore` over one unit of work."""

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        self._uow = uow

    # -- tenants and events -------------------------------------------------------------
    def tenant(self, tenant_id: str) -> Tenant:
        return self._uow.tenants.get(tenant_id)

    def append_event(self, event: NewEvent) -> None:
        self._uow.events.append_later(event)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """SAVEPOINT and RELEASE are deferred: they travel with the block's first statement
        and the next one after it (or the commit), instead of costing two round trips."""
        self._uow.defer("SAVEPOINT aggregation_event")
        try:
            yield
        except Unavailable:
            raise
        except BaseException:
            self._uow.execute("ROLLBACK TO SAVEPOINT aggregation_event")
            raise
        self._uow.defer("RELEASE SAVEPOINT aggregation_event")

    # -- idempotency --------------------------------------------------------------------
    def stored_result(self, tenant_id: str, event_id: str) -> StoredResult | None:
        rows = self._uow.execute_prepared(
            "agg_stored",
            "SELECT kind, fingerprint, result FROM aggregation_events"
            " WHERE tenant_id = $1::text AND event_id = $2::text",
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
    ) -> bool:
        """Keep the event's result; False when another transaction stored one first."""
        rows = self._uow.execute_prepared(
            "agg_store",
            "INSERT INTO aggregation_events (tenant_id, event_id, kind, fingerprint, result,"
            " token_id, recorded_at) VALUES ($1::text, $2::text, $3::text, $4::text,"
            " $5::jsonb, $6::text, $7::timestamptz)"
            " ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING event_id",
            (tenant_id, event_id, kind, fingerprint, json.dumps(result), token_id, at),
        )
        return bool(rows)

    # -- locking ------------------------------------------------------------------------
    def lock(self, keys: list[str]) -> None:
        """Transaction-scoped advisory locks on unit keys, taken in one order by every writer
        (so two writers never wait on each other in a cycle). Held until commit/rollback."""
        self._uow.execute_prepared("agg_lock", "SELECT aggregation_lock($1::text[])", (keys,))

    def lock_chain(self, head: str, others: list[str]) -> list[str] | None:
        """Lock ``head``, ``others`` and the chain of units above ``head``, in one round trip
        (migration 0013); return the chain, nearest first, or None if it kept changing."""
        rows = self._uow.execute_prepared(
            "agg_lock_chain",
            "SELECT aggregation_lock_chain($1::text, $2::text[])",
            (head, others),
        )
        chain = rows[0][0]
        return None if chain is None else list(chain)

    # -- units --------------------------------------------------------------------------
    def units(self, tenant_id: str, keys: list[str], *, lock: bool = False) -> dict[str, Unit]:
        """The tenant's units among ``keys`` (codes with their product's level; SSCCs), with
        their parent and whether their lot is on hold, in one statement. ``lock``: FOR UPDATE,
        codes then SSCCs, each in key order."""
        codes = [k for k in keys if not k.startswith(SSCC_PREFIX)]
        ssccs = [k[len(SSCC_PREFIX) :] for k in keys if k.startswith(SSCC_PREFIX)]
        if not codes and not ssccs:
            return {}
        locking = " ORDER BY 1 FOR UPDATE OF c" if lock else ""
        rows = self._uow.execute_prepared(
            "agg_units_locked" if lock else "agg_units",
            "WITH code_units AS (SELECT c.code_key AS key, c.state, p.pack_level AS level,"
            " c.gtin::text AS gtin, coalesce(c.lot, '') AS lot, c.market, l.parent_key,"
            " coalesce(h.held, false) AS held"
            " FROM unnest($1::text[]) k JOIN codes c ON c.code_key = k"
            " JOIN products p ON p.gtin = c.gtin"
            " LEFT JOIN containment l ON l.child_key = c.code_key"
            " LEFT JOIN lot_holds h ON h.gtin = c.gtin AND h.lot = c.lot"
            " WHERE c.tenant_id = $3::text" + locking + "),"
            " sscc_units AS (SELECT 'sscc:' || c.sscc AS key, c.state, c.level, '' AS gtin,"
            " '' AS lot, c.market, l.parent_key, false AS held"
            " FROM unnest($2::bpchar[]) k JOIN ssccs c ON c.sscc = k"
            " LEFT JOIN containment l ON l.child_key = 'sscc:' || c.sscc"
            " WHERE c.tenant_id = $3::text" + locking + ")"
            " SELECT * FROM code_units UNION ALL SELECT * FROM sscc_units",
            (codes, ssccs, tenant_id),
        )
        return {
            key: Unit(key, state, Level.named(level), gtin, lot, market, parent, held)
            for key, state, level, gtin, lot, market, parent, held in rows
        }

    def sscc_range(self, tenant_id: str, sscc: str) -> SsccRange | None:
        """The range allocated to the tenant (AllocateSsccs) that holds ``sscc``, if any."""
        rows = self._uow.execute_prepared(
            "agg_sscc_range",
            "SELECT a.extension_digit, a.company_prefix, a.first_reference, a.quantity"
            " FROM sscc_allocations a"
            " WHERE a.tenant_id = $1::text AND a.extension_digit = substr($2::text, 1, 1)::int"
            " AND substr($2::text, 2, length(a.company_prefix)) = a.company_prefix"
            " AND substr($2::text, 2 + length(a.company_prefix),"
            "     16 - length(a.company_prefix))::bigint"
            "     BETWEEN a.first_reference AND a.first_reference + a.quantity - 1"
            " LIMIT 1",
            (tenant_id, sscc),
        )
        return SsccRange(*rows[0]) if rows else None

    def create_sscc(self, tenant_id: str, sscc: str, level: Level, at: datetime) -> Unit:
        """Register ``sscc`` as a unit (the caller has found it in one of the tenant's ranges,
        and holds its lock), sent with the next statement."""
        self._uow.defer_prepared(
            "agg_create_sscc",
            "INSERT INTO ssccs (sscc, tenant_id, level, state, created_at, updated_at)"
            " VALUES ($2::text, $1::text, $3::text, 'commissioned', $4::timestamptz,"
            " $4::timestamptz)",
            (tenant_id, sscc, level.label, at),
        )
        return Unit(SSCC_PREFIX + sscc, "commissioned", level, "", "", None)

    def set_state(
        self, keys: list[str], state: str, at: datetime, market: str | None = None
    ) -> None:
        """Move units to ``state`` (and, when given, set the market they were shipped to)."""
        codes = [k for k in keys if not k.startswith(SSCC_PREFIX)]
        ssccs = [k[len(SSCC_PREFIX) :] for k in keys if k.startswith(SSCC_PREFIX)]
        if codes:
            self._uow.execute_prepared(
                "agg_code_state",
                "UPDATE codes c SET state = $1::text, updated_at = $2::timestamptz,"
                " market = CASE WHEN $3::bool THEN $4::text ELSE c.market END"
                " FROM unnest($5::text[]) k WHERE c.code_key = k",
                (state, at, market is not None, market, codes),
            )
        if ssccs:
            self._uow.execute_prepared(
                "agg_sscc_state",
                "UPDATE ssccs c SET state = $1::text, updated_at = $2::timestamptz,"
                " market = CASE WHEN $3::bool THEN $4::text ELSE c.market END"
                " FROM unnest($5::bpchar[]) k WHERE c.sscc = k",
                (state, at, market is not None, market, ssccs),
            )

    # -- hierarchy ----------------------------------------------------------------------
    def owned_ancestors(self, tenant_id: str, key: str) -> list[str] | None:
        """Parent chain of ``key``, nearest first; None unless it is one of the tenant's units.
        One statement: the top-parent lookup is the hottest read there is."""
        sscc = key[len(SSCC_PREFIX) :] if key.startswith(SSCC_PREFIX) else ""
        rows = self._uow.execute_prepared(
            "agg_owned_ancestors",
            _UP + "SELECT EXISTS (SELECT 1 FROM codes WHERE code_key = $1::text"
            " AND tenant_id = $2::text) OR EXISTS (SELECT 1 FROM ssccs"
            " WHERE sscc = $3::bpchar AND tenant_id = $2::text),"
            " ARRAY(SELECT key FROM up ORDER BY depth)",
            (key, tenant_id, sscc),
        )
        owned, chain = rows[0]
        return list(chain) if owned else None

    def children(self, parent: str) -> list[str]:
        rows = self._uow.execute_prepared(
            "agg_children",
            "SELECT child_key FROM containment WHERE parent_key = $1::text ORDER BY child_key",
            (parent,),
        )
        return [r[0] for r in rows]

    def descendants(self, roots: list[str]) -> list[tuple[str, str, int]]:
        """(key, parent, depth) of everything below ``roots``, breadth first."""
        rows = self._uow.execute_prepared(
            "agg_descendants",
            _DESCENDANTS + "SELECT key, parent, depth FROM down ORDER BY depth, key",
            (roots,),
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    def descendant_groups(
        self,
        tenant_id: str,
        root: str,
        all_levels: bool,
        after: tuple[int, str, str] | None,
        rows: int,
    ) -> list[ChildGroup]:
        """The units below ``root``, strictly after ``after`` in (depth, parent, key) order, as
        groups of one parent at one depth: groups until they hold at least ``rows`` units (or
        all there are); direct children only unless ``all_levels``. Nothing unless ``root`` is
        one of the tenant's units.

        One statement on the parent index and nothing else (containment carries each unit's
        state and market). Levels strictly decrease downwards (pallet, case, bundle, item), so
        nothing lies more than three levels below a unit: three fixed joins, which plan and
        run faster than a recursive walk, and items are never looked into. Each group comes
        back as one row, its keys joined by newlines: the driver builds 60 values for a
        pallet of 60 cases instead of 1,500 rows. Text is compared byte by byte (COLLATE "C":
        the order of code points, as the C.UTF-8 default gives, without a strcoll() per
        comparison, a third of the statement's time), in the order and in the resume alike."""
        sscc = root[len(SSCC_PREFIX) :] if root.startswith(SSCC_PREFIX) else ""
        found = self._uow.execute_prepared(
            "agg_descendant_groups",
            "SELECT depth, parent, n, keys, level, state, market, varying FROM ("
            " SELECT depth, parent, count(*)::int AS n,"
            "  string_agg(key, E'\\n' ORDER BY key) AS keys,"
            "  min(level)::int AS level, min(state) AS state, min(market) AS market,"
            "  CASE WHEN min(level) = max(level) AND min(state) = max(state)"
            "   AND (count(market) = 0 OR count(market) = count(*) AND min(market) = max(market))"
            "   THEN NULL ELSE string_agg(level || E'\\t' || state || E'\\t'"
            "   || coalesce(market, ''), E'\\n' ORDER BY key) END AS varying,"
            "  sum(count(*)) OVER (ORDER BY depth, parent) AS upto FROM ("
            ' SELECT key COLLATE "C" AS key, parent COLLATE "C" AS parent, depth, level,'
            '  state COLLATE "C" AS state, market COLLATE "C" AS market FROM ('
            " SELECT c1.child_key AS key, c1.parent_key AS parent, 1 AS depth,"
            "  c1.child_level AS level, c1.state, c1.market"
            "  FROM containment c1 WHERE c1.parent_key = $1::text"
            " UNION ALL SELECT c2.child_key, c2.parent_key, 2, c2.child_level, c2.state,"
            "  c2.market FROM containment c1 JOIN containment c2 ON c2.parent_key = c1.child_key"
            "  WHERE $2::bool AND c1.parent_key = $1::text AND c1.child_level > 1"
            " UNION ALL SELECT c3.child_key, c3.parent_key, 3, c3.child_level, c3.state,"
            "  c3.market FROM containment c1 JOIN containment c2 ON c2.parent_key = c1.child_key"
            "  JOIN containment c3 ON c3.parent_key = c2.child_key"
            "  WHERE $2::bool AND c1.parent_key = $1::text AND c2.child_level > 1) t) u"
            " WHERE (depth, parent, key) > ($3::int, $4::text, $5::text)"
            " AND (EXISTS (SELECT 1 FROM codes WHERE code_key = $1::text"
            "  AND tenant_id = $7::text) OR EXISTS (SELECT 1 FROM ssccs"
            "  WHERE sscc = $8::bpchar AND tenant_id = $7::text))"
            " GROUP BY depth, parent) g"
            " WHERE upto - n < $6::int ORDER BY depth, parent",
            (
                root,
                all_levels,
                *(after or (0, "", "")),
                rows,
                tenant_id,
                sscc,
            ),
        )
        return [
            ChildGroup(depth, parent, keys, n, level, state, market, _varying(varying))
            for depth, parent, n, keys, level, state, market, varying in found
        ]

    def level_counts(self, root: str) -> tuple[dict[Level, int], int]:
        """Descendants per level, and how many are direct children."""
        rows = self._uow.execute_prepared(
            "agg_level_counts",
            "WITH RECURSIVE down(key, level, depth) AS ("
            " SELECT child_key, child_level, 1 FROM containment WHERE parent_key = $1::text"
            " UNION ALL SELECT c.child_key, c.child_level, down.depth + 1"
            " FROM containment c JOIN down ON c.parent_key = down.key WHERE down.depth < 16)"
            " SELECT level, count(*), count(*) FILTER (WHERE depth = 1) FROM down GROUP BY 1",
            (root,),
        )
        return {Level(int(r[0])): int(r[1]) for r in rows}, sum(int(r[2]) for r in rows)

    def add_links(
        self,
        tenant_id: str,
        parent: str,
        children: list[Unit],
        event_id: str,
        at: datetime,
        action: str = "packed",
    ) -> None:
        """Put ``children`` into ``parent`` and record it in their history, one statement sent
        with the next one (:meth:`PostgresUnitOfWork.defer`). Their state and market are copied
        in (the triggers of migration 0008 keep them)."""
        self._uow.defer_prepared(
            "agg_add_links",
            "WITH linked AS (INSERT INTO containment (child_key, tenant_id, parent_key,"
            " child_level, event_id, packed_at, state, market) SELECT k, $1::text, $2::text, l,"
            " $3::text, $4::timestamptz, s, m"
            " FROM unnest($5::text[], $6::smallint[], $8::text[], $9::text[]) AS t(k, l, s, m)"
            " RETURNING child_key)"
            " INSERT INTO containment_history (tenant_id, unit_key, parent_key, action,"
            " event_id, event_time) SELECT $1::text, child_key, $2::text, $7::text, $3::text,"
            " $4::timestamptz FROM linked",
            (
                tenant_id,
                parent,
                event_id,
                at,
                [u.key for u in children],
                [int(u.level) for u in children],
                action,
                [u.state for u in children],
                [u.market for u in children],
            ),
        )

    def move_children(self, old_parent: str, new_parent: str) -> list[str]:
        """Everything directly in ``old_parent`` goes into ``new_parent``."""
        rows = self._uow.execute(
            "UPDATE containment SET parent_key = %s WHERE parent_key = %s RETURNING child_key",
            (new_parent, old_parent),
        )
        return [r[0] for r in rows]

    def take_place(self, old_child: str, new_child: str, event_id: str, at: datetime) -> None:
        """``new_child`` takes ``old_child``'s place in its parent."""
        self._uow.execute(
            "UPDATE containment SET child_key = %s, event_id = %s, packed_at = %s"
            " WHERE child_key = %s",
            (new_child, event_id, at, old_child),
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
        self._uow.execute_prepared(
            "agg_history",
            "INSERT INTO containment_history (tenant_id, unit_key, parent_key, action,"
            " event_id, event_time, attributes) SELECT $1::text, k, $2::text, $3::text,"
            " $4::text, $5::timestamptz, $6::jsonb FROM unnest($7::text[]) k",
            (tenant_id, parent, action, event_id, at, json.dumps(attributes or {}), keys),
        )

    def history(self, key: str, after_id: int, limit: int) -> list[HistoryEntry]:
        rows = self._uow.execute(
            "SELECT id, parent_key, action, event_id, event_time, attributes"
            " FROM containment_history WHERE unit_key = %s AND id > %s ORDER BY id LIMIT %s",
            (key, after_id, limit),
        )
        return [(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    # -- rules --------------------------------------------------------------------------
    def rule(self, tenant_id: str, scope: str) -> Rule | None:
        rows = self._uow.execute_prepared(
            "agg_rule",
            "SELECT capacity, homogeneous FROM pack_rules"
            " WHERE tenant_id = $1::text AND scope = $2::text",
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


def _varying(text: str | None) -> tuple[tuple[int, str, str | None], ...] | None:
    """Level, state and market per key, from ``level\\tstate\\tmarket`` lines."""
    if text is None:
        return None
    out = []
    for line in text.split("\n"):
        level, state, market = line.split("\t")
        out.append((int(level), state, market or None))
    return tuple(out)
