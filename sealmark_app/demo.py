"""Demo seeding for ``make run``: one brand, one product, one token per role.

DEMO CONVENIENCE: the tokens are written in clear to ``<data_dir>/demo-tokens.json`` (mode
0600) so a developer can find them again. Never use ``--seed-demo`` in production; serve warns
when it is on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sealmark.errors import NotFound
from sealmark.tenancy import usecases
from sealmark_app.root.container import Container

DEMO_TENANT = "demo"
# GS1 reserves prefix 952 for demonstrations: these can never collide with a real product.
DEMO_PREFIX = "9520123"
DEMO_GTIN = "09520123456788"


def seed_demo(container: Container, resolver_host: str) -> dict[str, Any]:
    """Create the demo brand once. Returns what there is to show (tokens from the file)."""
    path = container.settings.data_dir / "demo-tokens.json"
    try:
        with container.uow() as uow:
            uow.tenants.get(DEMO_TENANT)
        seeded_now = False
    except NotFound:
        usecases.create_tenant(
            container.uow,
            container.clock,
            tenant_id=DEMO_TENANT,
            name="Demo Brand 演示品牌",
            company_prefixes=[DEMO_PREFIX],
            resolver_host=resolver_host,
        )
        usecases.add_product(
            container.uow,
            container.clock,
            tenant_id=DEMO_TENANT,
            gtin=DEMO_GTIN,
            name="Demo Tonic 100 ml",
            default_market="DE",
            serial_alphabet="alnum-safe",
            serial_length=12,
            pin_length=6,
        )
        from sealmark_app.root.issuer import build_issuer

        build_issuer(container).rotate_key(DEMO_TENANT)
        tokens = {}
        for role in ("admin", "line", "logistics", "auditor"):
            _, value = usecases.create_token(
                container.uow,
                container.clock,
                container.random_bytes,
                tenant_id=DEMO_TENANT,
                roles=[role],
                name=f"demo {role}",
            )
            tokens[role] = value
        _write_private(path, {"tenant": DEMO_TENANT, "gtin": DEMO_GTIN, "tokens": tokens})
        seeded_now = True
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data["seeded_now"] = seeded_now
    return data


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
