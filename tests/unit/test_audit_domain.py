"""Audit's pure parts: alert kinds and workflow, who held a unit when (Trace's inheritance),
report rendering."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audit.domain import (
    RECALLABLE,
    Alert,
    AlertKind,
    AlertStatus,
    Severity,
    acknowledge,
    alert_kind,
    check_note,
    check_resolvable,
    entry_bytes,
    stored_kinds,
    unit_commitment,
)
from audit.reports import Table, render
from audit.trace import holders
from sealmark.errors import FailedPrecondition, InvalidArgument

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _alert(status: AlertStatus = AlertStatus.OPEN) -> Alert:
    return Alert(1, AlertKind.CLONE, status, "k", "DE", T0, {})


def test_stored_verifier_kinds_map_to_audit_kinds() -> None:
    assert alert_kind("counterfeit", {"reason": "never_issued"}) is AlertKind.COUNTERFEIT
    assert alert_kind("counterfeit", {"reason": "bad_signature"}) is AlertKind.BAD_SIGNATURE
    assert alert_kind("counterfeit", {"reason": "unknown_key"}) is AlertKind.BAD_SIGNATURE
    assert alert_kind("pin_reused", {}) is AlertKind.PIN_REUSE
    assert alert_kind("suspect_clone", {}) is AlertKind.CLONE
    assert alert_kind("recalled_scan", {}) is AlertKind.RECALLED_SCAN
    with pytest.raises(ValueError, match="nonsense"):
        alert_kind("nonsense", {})
    assert stored_kinds(AlertKind.BAD_SIGNATURE) == ["counterfeit"]
    assert stored_kinds(AlertKind.CLONE) == ["suspect_clone"]
    assert Alert(2, AlertKind.PIN_REUSE, AlertStatus.OPEN, None, "", T0, {}).severity is (
        Severity.CRITICAL
    )


def test_alert_workflow_rules() -> None:
    assert acknowledge(_alert()) is True
    assert acknowledge(_alert(AlertStatus.ACKNOWLEDGED)) is False
    with pytest.raises(FailedPrecondition, match="resolved"):
        acknowledge(_alert(AlertStatus.RESOLVED))
    check_resolvable(_alert(AlertStatus.ACKNOWLEDGED))
    with pytest.raises(FailedPrecondition, match="already resolved"):
        check_resolvable(_alert(AlertStatus.RESOLVED))


def test_notes_are_checked_and_name_the_field() -> None:
    assert check_note("  fine  ", "X.note", required=True) == "fine"
    with pytest.raises(InvalidArgument, match=r"X\.note"):
        check_note(" ", "X.note", required=True)
    with pytest.raises(InvalidArgument, match="at most 2000"):
        check_note("a" * 2001, "X.note", required=False)
    with pytest.raises(InvalidArgument, match="control"):
        check_note("a\x00b", "X.note", required=False)


def test_recallable_states_follow_the_lifecycle() -> None:
    assert "commissioned" in RECALLABLE and "dispensed" in RECALLABLE
    assert not {"allocated", "recalled", "destroyed", "scrapped", "returned"} & set(RECALLABLE)


def test_commitments_hide_the_serial_and_depend_on_the_signature() -> None:
    a = unit_commitment("09520123456788ABC", "sig-1")
    assert len(a) == 32 and b"ABC" not in a
    assert a != unit_commitment("09520123456788ABC", "sig-2")
    assert a == unit_commitment("09520123456788ABC", "sig-1")
    assert entry_bytes({"b": 1, "a": "ü"}) == '{"a":"ü","b":1}'.encode()


class FakeHistory:
    """AuditStore.containment_history over a list of rows."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def containment_history(self, keys: list[str]) -> list[tuple[Any, ...]]:
        return [
            (r[0], r[1], r[2], "e", r[3], r[4] if len(r) > 4 else {})
            for r in self.rows
            if r[0] in keys
        ]


def _h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_holders_follow_repacking_through_every_level() -> None:
    store = FakeHistory(
        [
            ("item", "caseA", "packed", _h(0)),
            ("item", "caseA", "unpacked", _h(2)),
            ("item", "caseB", "packed", _h(3)),
            ("caseA", "pallet1", "packed", _h(1)),
            ("caseB", "pallet2", "packed", _h(1)),  # before the item came in: counts from 3
            ("pallet2", "truck", "packed", _h(5)),
        ]
    )
    held, own = holders(store, "item")  # type: ignore[arg-type]
    spans = {(h.ancestor, h.since.hour, h.until.hour if h.until else None) for h in held}
    assert spans == {
        ("caseA", 8, 10),
        ("pallet1", 9, 10),  # pallet1 held caseA from 1h, the item only until 2h
        ("caseB", 11, None),
        ("pallet2", 11, None),
        ("truck", 13, None),
    }
    assert [r[2] for r in own] == ["packed", "unpacked", "packed"]
    pallet1 = next(h for h in held if h.ancestor == "pallet1")
    assert pallet1.covers(_h(1.5))
    assert not pallet1.covers(_h(2.5))


def test_holders_follow_rework_and_a_replaced_parent_label() -> None:
    store = FakeHistory(
        [
            ("item", "case1", "packed", _h(0)),
            ("item", "case1", "reworked", _h(1), {"direction": "out", "reason": "r"}),
            ("item", "case2", "reworked", _h(2)),  # reworked into case2
            ("item", "case3", "replaced", _h(4), {"from": "case2"}),  # case2's label replaced
            ("case2", "pallet", "packed", _h(0)),
            ("case2", "pallet", "replaced", _h(4), {"replaced_by": "case3"}),
            ("case3", "pallet", "replaced", _h(4), {"replaces": "case2"}),
        ]
    )
    held, _ = holders(store, "item")  # type: ignore[arg-type]
    spans = {(h.ancestor, h.since.hour, h.until.hour if h.until else None) for h in held}
    assert spans == {
        ("case1", 8, 9),
        ("case2", 10, 12),
        ("case3", 12, None),
        ("pallet", 10, 12),  # through case2
        ("pallet", 12, None),  # through case3
    }


TABLE = Table("T", ["region", "n"], [["=cmd()", 3], ["DE", 1]], 0, (1,))


def test_csv_is_escaped_against_formula_injection() -> None:
    rows = list(csv.reader(io.StringIO(render(TABLE, "csv").decode())))
    assert rows == [["region", "n"], ["'=cmd()", "3"], ["DE", "1"]]


def test_json_and_charts_render() -> None:
    data = json.loads(render(TABLE, "json"))
    assert data["rows"] == [{"region": "=cmd()", "n": 3}, {"region": "DE", "n": 1}]
    svg = render(TABLE, "svg")
    assert b"<svg" in svg and render(TABLE, "svg") == svg  # deterministic
    assert render(TABLE, "png").startswith(b"\x89PNG")
    empty = Table("E", ["region", "n"], [], 0, (1,))
    assert b"no data" in render(empty, "svg")
    assert b"DE" in svg  # labels are text, not paths
