"""The PKCS#11 path end to end: an issuer process whose signing keys live in a SoftHSM2 token
(SEALMARK_KEY_BACKEND=pkcs11, no passphrase configured) rotates a key inside the token, issues
codes over gRPC, and every signature verifies with the public key set using only
``cryptography``. A restarted process resumes the same request from the token's key."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealmark.clock import SystemClock
from sealmark.crypto.pkcs11 import find_softhsm_module
from sealmark.crypto.signature import canonical_bytes, decode_ai8030
from sealmark.storage.postgres import PostgresDatabase
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from tests.support.servers import IssuerProcess
from tests.support.tenants import seed_tenant

pytestmark = pytest.mark.e2e
TOKEN_LABEL = "sealmark-e2e"
USER_PIN = "e2e-user-pin"
EXPIRY = "301231"
QUANTITY = 3_000
PINS = ("--so-pin", "e2e-so-pin", "--pin", USER_PIN)


def _softhsm(root: Path) -> tuple[str, Path]:
    """A fresh SoftHSM2 token under ``root``; returns (module path, SOFTHSM2_CONF path)."""
    module, util = find_softhsm_module(), shutil.which("softhsm2-util")
    if module is None or util is None:
        pytest.fail("SoftHSM2 is not installed: run scripts/ensure-softhsm.sh", pytrace=False)
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN_LABEL, *PINS],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
    )
    return module, conf


def hsm_env(pg_dsn: str, redis_url: str, module: str, conf: Path) -> dict[str, str]:
    """The environment of an Issuer process that signs with the SoftHSM2 token at ``conf``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(
        SOFTHSM2_CONF=str(conf),
        SEALMARK_DATABASE_URL=pg_dsn,
        SEALMARK_REDIS_URL=redis_url,
        SEALMARK_GRPC_PORT="0",
        SEALMARK_METRICS_PORT="0",
        SEALMARK_LOG_LEVEL="WARNING",
        SEALMARK_SECRET_PEPPER="hsm-test-pepper-0123456",
        SEALMARK_KEY_BACKEND="pkcs11",
        SEALMARK_PKCS11_MODULE=module,
        SEALMARK_PKCS11_TOKEN=TOKEN_LABEL,
        SEALMARK_PKCS11_PIN=USER_PIN,
    )
    return env


@pytest.fixture(scope="module")
def hsm_issuer(
    pg_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    module, conf = _softhsm(tmp_path_factory.mktemp("softhsm"))
    db = PostgresDatabase(pg_dsn)
    clock = SystemClock()
    brand = seed_tenant(db.unit_of_work, clock, "hsm", tokens={"ops": ["admin"]})
    gtin, token = brand.gtin, brand.tokens["ops"]
    db.close()
    env = hsm_env(pg_dsn, redis_url, module, conf)
    server = IssuerProcess(env)
    try:
        with grpc.insecure_channel(server.target) as channel:
            rotated = issuer_pb2_grpc.IssuerStub(channel).RotateKey(
                issuer_pb2.RotateKeyRequest(), metadata=_md(token), timeout=30
            )
    finally:
        server.close()
    yield {
        "env": env,
        "token": token,
        "gtin": gtin,
        "tenant": brand.tenant_id,
        "dsn": pg_dsn,
        "key_id": rotated.key_id,
    }


def _md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _issue(target: str, world: dict[str, Any], request_id: str) -> list[issuer_pb2.IssuedCode]:
    with grpc.insecure_channel(target) as channel:
        stub = issuer_pb2_grpc.IssuerStub(channel)
        request = issuer_pb2.IssueCodesRequest(
            request_id=request_id,
            gtin=world["gtin"],
            lot="HSM-1",
            expiry=EXPIRY,
            quantity=QUANTITY,
            line_id="line-h",
            work_order="WO-h",
        )
        responses = stub.IssueCodes(request, metadata=_md(world["token"]), timeout=120)
        return [code for response in responses for code in response.codes]


def _key_set(target: str, token: str) -> dict[str, bytes]:
    with grpc.insecure_channel(target) as channel:
        keys = issuer_pb2_grpc.IssuerStub(channel).GetKeySet(
            issuer_pb2.GetKeySetRequest(), metadata=_md(token), timeout=10
        )
    return {k.key_id: k.public_key for k in keys.keys}


def test_codes_signed_in_the_token_verify_and_resume_after_restart(
    hsm_issuer: dict[str, Any],
) -> None:
    key_id = hsm_issuer["key_id"]
    server = IssuerProcess(hsm_issuer["env"])
    try:
        codes = _issue(server.target, hsm_issuer, "hsm-run-1")
        keys = _key_set(server.target, hsm_issuer["token"])
    finally:
        server.close()

    assert len(codes) == QUANTITY
    assert len({c.serial for c in codes}) == QUANTITY
    public = Ed25519PublicKey.from_public_bytes(keys[key_id])
    for code in codes:
        code_key, signature = decode_ai8030(code.signature)
        assert code_key == key_id
        message = canonical_bytes(hsm_issuer["gtin"], code.serial, "HSM-1", EXPIRY, key_id)
        public.verify(signature, message)  # raises InvalidSignature if the token signed wrong

    # The database holds the token label and no private key material for this key.
    with psycopg2.connect(hsm_issuer["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT backend, private_key_pem IS NULL, token_label FROM signing_keys"
            " WHERE tenant_id = %s AND key_id = %s",
            (hsm_issuer["tenant"], key_id),
        )
        backend, no_pem, label = cur.fetchone()
    assert (backend, no_pem) == ("pkcs11", True)
    assert label.startswith(f"sealmark/{hsm_issuer['tenant']}/{key_id}/")

    # A new process opens the same key in the token and replays the request identically.
    again = IssuerProcess(hsm_issuer["env"])
    try:
        replay = _issue(again.target, hsm_issuer, "hsm-run-1")
        fresh = _issue(again.target, hsm_issuer, "hsm-run-2")
    finally:
        again.close()
    assert [(c.serial, c.signature, c.pin) for c in replay] == [
        (c.serial, c.signature, c.pin) for c in codes
    ]
    assert not {c.serial for c in fresh} & {c.serial for c in codes}
    for code in fresh[:200]:
        _, signature = decode_ai8030(code.signature)
        public.verify(
            signature, canonical_bytes(hsm_issuer["gtin"], code.serial, "HSM-1", EXPIRY, key_id)
        )


def test_a_server_without_the_token_refuses_to_sign_with_its_key(
    hsm_issuer: dict[str, Any],
) -> None:
    """The key set still names the HSM key; a process configured for software keys cannot
    sign with it and says which settings are missing, writing nothing."""
    env = {k: v for k, v in hsm_issuer["env"].items() if not k.startswith("SEALMARK_PKCS11_")}
    env.update(SEALMARK_KEY_BACKEND="software", SEALMARK_KEY_PASSPHRASE="software-passphrase")
    server = IssuerProcess(env)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            _issue(server.target, hsm_issuer, "hsm-run-nohsm")
    finally:
        server.close()
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "SEALMARK_PKCS11_MODULE" in (caught.value.details() or "")
    with psycopg2.connect(hsm_issuer["dsn"]) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM codes WHERE tenant_id = %(t)s"
            "        AND request_id = 'hsm-run-nohsm'),"
            "       (SELECT count(*) FROM issue_requests WHERE tenant_id = %(t)s"
            "        AND request_id = 'hsm-run-nohsm')",
            {"t": hsm_issuer["tenant"]},
        )
        assert cur.fetchone() == (0, 0)
