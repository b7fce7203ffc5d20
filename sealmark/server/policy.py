"""Helpers to write a service's access policy: method name → roles allowed."""

from __future__ import annotations

from collections.abc import Iterable

from sealmark.tenancy.model import Role

READ = frozenset({Role.LINE, Role.LOGISTICS, Role.AUDITOR})


def policy(service: str, rules: dict[frozenset[Role], Iterable[str]]) -> dict[str, frozenset[Role]]:
    """Expand ``{roles: [method, …]}`` into ``{"/sealmark.v1.Service/Method": roles}``."""
    return {
        f"/sealmark.v1.{service}/{method}": roles
        for roles, methods in rules.items()
        for method in methods
    }
