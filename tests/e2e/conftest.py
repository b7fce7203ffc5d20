"""Shared fixture of the Issuer end-to-end tests: one tenant with two products, a line and an
admin token, a signing key, and a real Issuer server on a free port."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import redis

from sealmark.clock import SystemClock
from sealmark.server.app import create_server
from sealmark.settings import load_settings
from sealmark.storage.postgres import PostgresDatabase
from sealmark.storage.redis_client import connect_redis
from sealmark.tenancy import usecases
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.root import binding_for
from sealmark_app.root.container import Container
from tests.storage_contract import gtin_under
from tests.support.tenants import seed_tenant


def make_container(
    pg_dsn: str,
    redis_url: str,
    random_bytes: Callable[[int], bytes] = os.urandom,
    **settings: str,
) -> Container:
    """A process container on the test servers, with test secrets (``settings`` adds or
    overrides SEALMARK_* variables)."""
    environ = {
        "SEALMARK_DATABASE_URL": pg_dsn,
        "SEALMARK_REDIS_URL": redis_url,
        "SEALMARK_SECRET_PEPPER": "e2e-test-pepper-0123456789",
        "SEALMARK_KEY_PASSPHRASE": "e2e-test-passphrase",
        **settings,
    }
    if "SEALMARK_REDIS_CLUSTER_NODES" in settings:  # a cluster instead of redis_url
        del environ["SEALMARK_REDIS_URL"]
    loaded = load_settings(environ)
    return Container(
        loaded,
        PostgresDatabase(pg_dsn),
        redis.Redis.from_url(redis_url)
        if loaded.redis_cluster_nodes is None
        else connect_redis(None, loaded.redis_cluster_nodes),
        SystemClock(),
        random_bytes,
    )


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url)
    clock, uow = container.clock, container.uow
    brand = seed_tenant(uow, clock, "iss")
    gtin, line, admin = brand.gtin, brand.tokens["line"], brand.tokens["admin"]
    small = gtin_under(brand.prefix + "1")
    usecases.add_product(
        uow,
        clock,
        tenant_id=brand.tenant_id,
        gtin=small,
        name="Tiny space",
        serial_alphabet="numeric",
        serial_length=6,
    )
    running = create_server([binding_for("issuer", container)], container.authenticator)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = issuer_pb2_grpc.IssuerStub(channel)
    stub.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(admin), timeout=10)
    yield {
        "stub": stub,
        "line": line,
        "admin": admin,
        "gtin": gtin,
        "small": small,
        "tenant": brand.tenant_id,
        "dsn": pg_dsn,
    }
    channel.close()
    running.stop(0)
    container.close()


def _md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the interpreter would print as "Exception ignored" during the test (a generator
    or cursor finalised too late), collected instead, so the test can assert there is none."""
    ignored: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    return ignored
