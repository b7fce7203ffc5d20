"""The queries shipping, recall and diversion checks follow: the units under a parent (paged,
breadth first), their counts per level, a unit's parent chain and its containment history."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from aggregator.base import AggregatorBase, HistoryRow
from aggregator.domain import ChildGroup, Level
from sealmark.errors import InvalidArgument, NotFound
from sealmark.tenancy.model import Principal
from sealmark.units import UnitRef

MAX_PAGE = 1000
DEFAULT_PAGE = 500
EXPLODE_BATCH_ROWS = 10_000  # rows fetched per statement while streaming children


class Queries(AggregatorBase):
    # -- queries ------------------------------------------------------------------------
    def children(
        self,
        principal: Principal,
        parent: UnitRef,
        all_levels: bool,
        page_size: int = 0,
        page_token: str = "",
    ) -> Iterator[tuple[list[ChildGroup], str]]:
        """Pages of the units under ``parent`` now, breadth first (by depth, then parent, then
        key), each with the token that resumes after it (empty on the last page). A page is
        ``page_size`` units in groups of one parent (a group cut at a page's end goes on in
        the next)."""
        self._owned(principal, [parent], "ListChildrenRequest")
        size = _page_size(page_size, "ListChildrenRequest.page.page_size")
        after = _child_token(page_token)
        per_fetch = size * max(1, EXPLODE_BATCH_ROWS // size)
        first, sent = True, False
        while True:
            with self._storage.reads() as store:
                groups = store.descendant_groups(
                    principal.tenant_id, parent.key, all_levels, after, per_fetch + 1
                )
                # Nothing back: an empty parent, or not one of the tenant's units at all.
                if first and not groups and not store.units(principal.tenant_id, [parent.key]):
                    raise NotFound(f"ListChildrenRequest.parent: {parent} was not issued to you")
            first = False
            fetched = sum(g.count for g in groups)
            more = fetched > per_fetch
            left = min(fetched, per_fetch)  # units of this fetch still to send
            pending = deque(groups)
            page: list[ChildGroup] = []
            room = size
            while left:
                group = pending.popleft()
                if group.count > min(room, left):
                    group, rest = group.split(min(room, left))
                    pending.appendleft(rest)
                page.append(group)
                room -= group.count
                left -= group.count
                if not room or not left:
                    after = (group.depth, group.parent, group.last_key)
                    last = not more and not left
                    yield page, "" if last else _child_token_of(after)
                    page, room, sent = [], size, True
            if not sent:  # nothing at all (or nothing after the token): one empty page
                yield [], ""
            if not more:
                return

    def counts(self, principal: Principal, parent: UnitRef) -> tuple[dict[Level, int], int]:
        self._owned(principal, [parent], "GetCountsRequest")
        with self._storage.reads() as store:
            if not store.units(principal.tenant_id, [parent.key]):
                raise NotFound(f"GetCountsRequest.parent: {parent} was not issued to you")
            return store.level_counts(parent.key)

    def ancestors(self, principal: Principal, code: UnitRef) -> list[UnitRef]:
        """The parent chain of ``code`` now, nearest first (the last is the top parent)."""
        self._owned(principal, [code], "GetAncestorsRequest")
        with self._storage.reads() as store:
            chain = store.owned_ancestors(principal.tenant_id, code.key)
        if chain is None:
            raise NotFound(f"GetAncestorsRequest.code: {code} was not issued to you")
        return [UnitRef.of_key(k) for k in chain]

    def history(
        self, principal: Principal, code: UnitRef, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[HistoryRow], str]:
        self._owned(principal, [code], "GetContainmentHistoryRequest")
        size = _page_size(page_size, "GetContainmentHistoryRequest.page.page_size")
        try:
            after = int(page_token) if page_token else 0
        except ValueError:
            raise InvalidArgument(
                "GetContainmentHistoryRequest.page.page_token", "not a token this server gave"
            ) from None
        with self._storage.reads() as store:
            if not store.units(principal.tenant_id, [code.key]):
                raise NotFound(f"GetContainmentHistoryRequest.code: {code} was not issued to you")
            rows = store.history(code.key, after, size + 1)
        page = rows[:size]
        token = str(page[-1][0]) if len(rows) > size else ""
        return [
            HistoryRow(event, action, UnitRef.of_key(up) if up else None, at, attrs)
            for _, up, action, event, at, attrs in page
        ], token


def _page_size(value: int, name: str) -> int:
    if value < 0 or value > MAX_PAGE:
        raise InvalidArgument(name, f"{value}, want 0..{MAX_PAGE}")
    return value or DEFAULT_PAGE


def _child_token_of(after: tuple[int, str, str]) -> str:
    """The page token resuming after (depth, parent, key): ``depth parent key``."""
    return f"{after[0]} {after[1]} {after[2]}"


def _child_token(token: str) -> tuple[int, str, str] | None:
    """(depth, parent, key) of the last unit sent, from ``depth parent key`` (no key holds a
    space)."""
    if not token:
        return None
    parts = token.split(" ")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1] or not parts[2]:
        raise InvalidArgument("ListChildrenRequest.page.page_token", "not a token this server gave")
    return int(parts[0]), parts[1], parts[2]
