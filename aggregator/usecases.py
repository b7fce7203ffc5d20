"""The Aggregator: pack and unpack at line speed, logistics on whole hierarchies, and the
queries that shipping, recall and diversion checks follow.

Every write is one transaction, idempotent by its event id (the result is stored with a
fingerprint of the request; a resend returns it, a different request under the same id is
ALREADY_EXISTS). Writers take transaction-scoped locks on every unit they read the hierarchy
of (the parent, its ancestors and the children), all in one sorted call, so two conflicting
packs of one child serialise and exactly one wins, and two packs that would close a cycle
between them cannot both pass their cycle check.

The operations live by family: :mod:`aggregator.packing` (pack, unpack, replace, sample,
rework, rules), :mod:`aggregator.logistics` (ship, receive, decommission, undo) and
:mod:`aggregator.queries` (children, counts, ancestors, history), on the shared machinery of
:mod:`aggregator.base`. The Aggregator takes its storage port
(:class:`aggregator.ports.AggregationStorage`) and a clock; ``sealmark_app.root.aggregator``
builds it.
"""

from __future__ import annotations

from aggregator.base import BatchInterrupted, HistoryRow, Outcome, Where
from aggregator.logistics import Logistics
from aggregator.packing import Packing
from aggregator.queries import Queries

__all__ = ["Aggregator", "BatchInterrupted", "HistoryRow", "Outcome", "Where"]


class Aggregator(Packing, Logistics, Queries):
    """Every Aggregator use case, on one storage port and one clock."""
