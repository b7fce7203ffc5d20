from __future__ import annotations

import pytest

from sealmark.errors import FailedPrecondition
from sealmark.lifecycle import ALLOWED, FINAL, CodeState, check_transition

S = CodeState


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.ALLOCATED, S.COMMISSIONED),
        (S.ALLOCATED, S.RETURNED),
        (S.ALLOCATED, S.SCRAPPED),
        (S.COMMISSIONED, S.IN_TRANSIT),
        (S.IN_TRANSIT, S.RECEIVED),
        (S.COMMISSIONED, S.RECALLED),
    ],
)
def test_legal(current: CodeState, target: CodeState) -> None:
    check_transition("X", current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.RETURNED, S.COMMISSIONED),
        (S.SCRAPPED, S.COMMISSIONED),
        (S.DESTROYED, S.RECALLED),
        (S.ALLOCATED, S.IN_TRANSIT),
        (S.COMMISSIONED, S.ALLOCATED),
        (S.COMMISSIONED, S.RETURNED),
    ],
)
def test_illegal_names_code_and_state(current: CodeState, target: CodeState) -> None:
    with pytest.raises(FailedPrecondition, match=f"code 0952X is {current.value}"):
        check_transition("0952X", current, target)


def test_never_reused_states_are_final_and_nothing_returns_to_allocated() -> None:
    assert {S.RETURNED, S.SCRAPPED, S.DESTROYED} <= FINAL
    assert all(S.ALLOCATED not in targets for targets in ALLOWED.values())
    assert set(ALLOWED) == set(CodeState)
