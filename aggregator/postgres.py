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


# Walks of the hierarchy go one level per statement: on Citus a unit's parent or children
# live on other shards than the unit, so a recursive CTE or a self-join of containment over
# levels cannot run there (docs/citus.md). Levels strictly decrease downwards (pallet, case,
# bundle, item), so a walk is a few statements, never more than MAX_DEPTH.
MAX_DEPTH = 16

_PARENT = "SELECT parent_key FROM containment WHERE child_key = $1::text"

_LOCK = (
    "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT"
    " hashtextextended(k, 0) AS h FROM unnest($1::text[]) k ORDER BY 1) s"
)

_OWNED = (
    "SELECT EXISTS (SELECT 1 FROM codes WHERE code_key = $1::text AND tenant_id = $2::text)"
    " OR EXISTS (SELECT 1 FROM ssccs WHERE sscc = $3::bpchar AND tenant_id = $2::text)"
)


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
        (so two writers never wait on each other in a cycle). Held until commit/rollback.
        On Citus they are the coordinator's, where every write goes through."""
        self._uow.execute_prepared("agg_lock", _LOCK, (keys,))

    def lock_chain(self, head: str, others: list[str]) -> list[str] | None:
        """Lock ``head`` and ``others``, then the chain of units above ``head``, again until
        that chain is stable: once ``head`` is locked no one else can move it, but a
        concurrent writer may still move a unit above it. Each read is a statement of its
        own, so it sees what committed before its lock was granted. Returns the chain,
        nearest first, or None when it kept changing."""
        # Each lock travels with the read after it (one round trip; the read runs once the
        # lock is granted, with a snapshot of its own).
        self._uow.defer_prepared("agg_lock", _LOCK, ([head, *others],))
        chain = self._chain(head)
        for _attempt in range(8):
            if not chain:
                return chain
            self._uow.defer_prepared("agg_lock", _LOCK, (chain,))
            again = self._chain(head)
            if again == chain:
                return chain
            chain = again
        return None

    def _chain(self, key: str, first: str | None = None) -> list[str]:
        """The units above ``key``, nearest first (``first``: its parent, already read), one
        primary-key probe per level."""
        chain: list[str] = []
        parent = first if first is not None else self._parent(key)
        while parent is not None and len(chain) < MAX_DEPTH:
            chain.append(parent)
            parent = self._parent(parent)
        return chain

    def _parent(self, key: str) -> str | None:
        rows = self._uow.execute_prepared("agg_parent", _PARENT, (key,))
        return str(rows[0][0]) if rows else None

    def _links_below(self, parents: list[str]) -> list[tuple[str, str, int, str, str | None]]:
        """(key, parent, level, state, market) of the units directly in ``parents``, by key."""
        if not parents:
            return []
        rows = self._uow.execute_prepared(
            "agg_links_below",
            "SELECT child_key, parent_key, child_level, state, market FROM containment"
            " WHERE parent_key = ANY($1::text[]) ORDER BY child_key",
            (parents,),
        )
        return [(r[0], r[1], int(r[2]), r[3], r[4]) for r in rows]

    # -- units --------------------------------------------------------------------------
    def units(self, tenant_id: str, keys: list[str], *, lock: bool = False) -> dict[str, Unit]:
        """The tenant's units among ``keys`` (codes with their product's level; SSCCs), with
        their parent and whether their lot is on hold, in one statement. ``lock``: their rows
        locked first (as FOR UPDATE would)."""
        codes = [k for k in keys if not k.startswith(SSCC_PREFIX)]
        ssccs = [k[len(SSCC_PREFIX) :] for k in keys if k.startswith(SSCC_PREFIX)]
        if not codes and not ssccs:
            return {}
        if lock:
            # Row locks by an UPDATE that changes nothing: it waits for and then reads the
            # latest version like FOR UPDATE, which Citus refuses over several shards. Sent
            # in front of the read below, in its round trip.
            if codes:
                self._uow.defer_prepared(
                    "agg_lock_codes",
                    "UPDATE codes SET state = state WHERE code_key = ANY($1::text[])"
                    " AND tenant_id = $2::text",
                    (codes, tenant_id),
                )
            if ssccs:
                self._uow.defer_prepared(
                    "agg_lock_ssccs",
                    "UPDATE ssccs SET state = state WHERE sscc = ANY($1::bpchar[])"
                    " AND tenant_id = $2::text",
                    (ssccs, tenant_id),
                )
        rows = self._uow.execute_prepared(
            "agg_units",
            "WITH code_units AS (SELECT c.code_key AS key, c.state, p.pack_level AS level,"
            " c.gtin::text AS gtin, coalesce(c.lot, '') AS lot, c.market, l.parent_key,"
            " coalesce(h.held, false) AS held"
            " FROM unnest($1::text[]) k JOIN codes c ON c.code_key = k"
            " JOIN products p ON p.gtin = c.gtin"
            " LEFT JOIN containment l ON l.child_key = c.code_key"
            " LEFT JOIN lot_holds h ON h.gtin = c.gtin AND h.lot = c.lot"
            " WHERE c.tenant_id = $3::text),"
            " sscc_units AS (SELECT 'sscc:' || c.sscc AS key, c.state, c.level, '' AS gtin,"
            " '' AS lot, c.market, l.parent_key, false AS held"
            " FROM unnest($2::bpchar[]) k JOIN ssccs c ON c.sscc = k"
            " LEFT JOIN containment l ON l.child_key = 'sscc:' || c.sscc"
            " WHERE c.tenant_id = $3::text)"
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
        # Containment carries each contained unit's state and market (migration 0008): the
        # copies are written with the units, in the same round trip.
        self._uow.defer_prepared(
            "agg_link_state",
            "UPDATE containment SET state = $1::text,"
            " market = CASE WHEN $2::bool THEN $3::text ELSE market END"
            " WHERE child_key = ANY($4::text[])",
            (state, market is not None, market, keys),
        )
        if codes:
            self._uow.execute_prepared(
                "agg_code_state",
                "UPDATE codes c SET state = $1::text, updated_at = $2::timestamptz,"
                " market = CASE WHEN $3::bool THEN $4::text ELSE c.market END"
                " WHERE c.code_key = ANY($5::text[])",
                (state, at, market is not None, market, codes),
            )
        if ssccs:
            self._uow.execute_prepared(
                "agg_sscc_state",
                "UPDATE ssccs c SET state = $1::text, updated_at = $2::timestamptz,"
                " market = CASE WHEN $3::bool THEN $4::text ELSE c.market END"
                " WHERE c.sscc = ANY($5::bpchar[])",
                (state, at, market is not None, market, ssccs),
            )

    # -- hierarchy ----------------------------------------------------------------------
    def owned_ancestors(self, tenant_id: str, key: str) -> list[str] | None:
        """Parent chain of ``key``, nearest first; None unless it is one of the tenant's units.
        The ownership and the first parent in one statement (one shard on Citus: the code and
        its containment row are co-located), then one probe per level above."""
        sscc = key[len(SSCC_PREFIX) :] if key.startswith(SSCC_PREFIX) else ""
        rows = self._uow.execute_prepared(
            "agg_owned_parent",
            _OWNED + ", (" + _PARENT + ")",
            (key, tenant_id, sscc),
        )
        owned, parent = rows[0]
        if not owned:
            return None
        return self._chain(key, first=parent) if parent is not None else []

    def children(self, parent: str) -> list[str]:
        rows = self._uow.execute_prepared(
            "agg_children",
            "SELECT child_key FROM containment WHERE parent_key = $1::text ORDER BY child_key",
            (parent,),
        )
        return [r[0] for r in rows]

    def descendants(self, roots: list[str]) -> list[tuple[str, str, int]]:
        """(key, parent, depth) of everything below ``roots``, breadth first: one statement
        per level, each in key order."""
        found: list[tuple[str, str, int]] = []
        frontier = roots
        for depth in range(1, MAX_DEPTH + 1):
            below = self._links_below(frontier)
            found.extend((k, p, depth) for k, p, _, _, _ in below)
            frontier = [k for k, _, _, _, _ in below]
            if not frontier:
                break
        return found

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

        Read level by level from the parent index and nothing else (containment carries each
        unit's state and market): levels strictly decrease downwards (pallet, case, bundle,
        item), so nothing lies more than three levels below a unit, and items are never
        looked into. Grouped here; keys compare code point by code point (as COLLATE "C"),
        in the order and in the resume alike."""
        # The first level only if the root is the tenant's (nothing at all otherwise).
        sscc = root[len(SSCC_PREFIX) :] if root.startswith(SSCC_PREFIX) else ""
        first = self._uow.execute_prepared(
            "agg_owned_links_below",
            "SELECT child_key, parent_key, child_level, state, market FROM containment"
            " WHERE parent_key = $1::text AND (" + _OWNED + ") ORDER BY child_key",
            (root, tenant_id, sscc),
        )
        level = [(r[0], r[1], int(r[2]), r[3], r[4]) for r in first]
        links = [(1, *link) for link in level]
        for depth in (2, 3) if all_levels else ():
            level = self._links_below([k for k, _, lv, _, _ in level if lv > 1])
            links.extend((depth, *link) for link in level)
        start = after or (0, "", "")
        groups: dict[tuple[int, str], list[tuple[str, int, str, str | None]]] = {}
        for depth, key, parent, lv, state, market in links:
            if (depth, parent, key) > start:
                groups.setdefault((depth, parent), []).append((key, lv, state, market))
        out: list[ChildGroup] = []
        upto = 0
        for (depth, parent), members in sorted(groups.items()):
            if upto >= rows:
                break
            members.sort()
            upto += len(members)
            out.append(_group(depth, parent, members))
        return out

    def level_counts(self, root: str) -> tuple[dict[Level, int], int]:
        """Descendants per level, and how many are direct children (one statement a level)."""
        counts: dict[Level, int] = {}
        direct = 0
        frontier = [root]
        for depth in range(1, MAX_DEPTH + 1):
            below = self._links_below(frontier)
            if depth == 1:
                direct = len(below)
            for _, _, lv, _, _ in below:
                counts[Level(lv)] = counts.get(Level(lv), 0) + 1
            frontier = [k for k, _, _, _, _ in below]
            if not frontier:
                break
        return counts, direct

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
        in (every writer of a unit's state keeps them, see :meth:`set_state`)."""
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
        """``new_child`` takes ``old_child``'s place in its parent: the link moves to the new
        key (a row of another shard on Citus, which never updates a distribution column)."""
        gone = self._uow.execute(
            "DELETE FROM containment WHERE child_key = %s"
            " RETURNING tenant_id, parent_key, child_level, state, market",
            (old_child,),
        )
        for tenant_id, parent, level, state, market in gone:
            self._uow.execute(
                "INSERT INTO containment (child_key, tenant_id, parent_key, child_level,"
                " event_id, packed_at, state, market) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (new_child, tenant_id, parent, level, event_id, at, state, market),
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


def _group(depth: int, parent: str, members: list[tuple[str, int, str, str | None]]) -> ChildGroup:
    """One parent's units at one depth, in key order, as (key, level, state, market)."""
    levels = {lv for _, lv, _, _ in members}
    states = {st for _, _, st, _ in members}
    markets = [m for _, _, _, m in members if m is not None]
    uniform = (
        len(levels) == 1
        and len(states) == 1
        and (not markets or (len(markets) == len(members) and len(set(markets)) == 1))
    )
    return ChildGroup(
        depth,
        parent,
        "\n".join(k for k, _, _, _ in members),
        len(members),
        min(levels),
        min(states),
        min(markets) if markets else None,
        None if uniform else tuple((lv, st, m) for _, lv, st, m in members),
    )
