from __future__ import annotations

import os

import pytest

from sealmark.errors import PermissionDenied, Unauthenticated
from sealmark.tenancy.model import Principal, Role
from sealmark.tenancy.tokens import hash_secret, new_token, secret_matches, split_token


def test_new_token_round_trips_and_stores_only_a_hash() -> None:
    issued = new_token(os.urandom)
    token_id, secret = split_token(issued.value)
    assert token_id == issued.id
    assert secret not in issued.secret_hash.hex()
    assert issued.secret_hash == hash_secret(secret)
    assert secret_matches(secret, issued.secret_hash)
    assert not secret_matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), issued.secret_hash)


def test_tokens_differ() -> None:
    assert len({new_token(os.urandom).value for _ in range(50)}) == 50


@pytest.mark.parametrize(
    "value", ["", "smk_", "Bearer x", "smk_abc_def", "smk_" + "a" * 12 + "_" + "b" * 42, "x" * 5000]
)
def test_malformed_tokens_are_unauthenticated(value: str) -> None:
    with pytest.raises(Unauthenticated):
        split_token(value)


def test_principal_roles() -> None:
    line = Principal("acme", frozenset({Role.LINE}))
    line.require(Role.LINE, Role.LOGISTICS)
    with pytest.raises(PermissionDenied, match="auditor"):
        line.require(Role.AUDITOR)
    Principal("acme", frozenset({Role.ADMIN})).require(Role.AUDITOR)
