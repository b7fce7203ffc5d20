"""`sealmark verify` in a subprocess, as a user runs it: codes issued and commissioned through a
real Issuer, keys exported with `sealmark keys export`, then checked offline (no server, no
database) and online against a real Verifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sealmark.gs1 import GS
from sealmark.server.app import create_server
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.root import binding_for
from sealmark_app.root.verifier import build_verifier
from tests.e2e.conftest import _md, make_container
from tests.support.cli import ROOT, sealmark
from tests.support.tenants import seed_tenant
from verifier.domain import Rules

pytestmark = pytest.mark.e2e
# The secrets of tests.e2e.conftest.make_container: `keys export` opens the same database.
SECRETS = {
    "SEALMARK_SECRET_PEPPER": "e2e-test-pepper-0123456789",
    "SEALMARK_KEY_PASSPHRASE": "e2e-test-passphrase",
}
ONLY_SIGNATURE = "offline check: the code's state, recalls and clone signals were not checked"
NOWHERE = "postgresql://nobody@127.0.0.1:1/none"  # an offline check must not need a database


@pytest.fixture(scope="module")
def brand(pg_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    container = make_container(pg_dsn, redis_url)
    seeded = seed_tenant(container.uow, container.clock, "vcli")
    # Generous limits: every scan here comes from 127.0.0.1.
    build_verifier(container).set_rules(
        seeded.tenant_id, Rules(rate_per_minute=100_000, guess_limit=100_000)
    )
    running = create_server(
        [binding_for("issuer", container), binding_for("verifier", container)],
        container.authenticator,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(
        issuer_pb2.RotateKeyRequest(), metadata=_md(seeded.tokens["admin"]), timeout=10
    )
    world = {
        "container": container,
        "issuer": issuer,
        "brand": seeded,
        "target": f"127.0.0.1:{running.port}",
        "dsn": pg_dsn,
        "redis_url": redis_url,
        "dir": tmp_path_factory.mktemp("verify-cli"),
    }
    world["codes"] = _issue(world, 8)
    world["keys"] = _export(world, "keys.json")
    yield world
    channel.close()
    running.stop(0)
    container.close()


def _issue(world: dict[str, Any], count: int) -> list[issuer_pb2.IssuedCode]:
    brand = world["brand"]
    responses = world["issuer"].IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id="r-" + os.urandom(6).hex(),
            gtin=brand.gtin,
            lot="LOT-CLI",
            expiry="301231",
            quantity=count,
            line_id="line-1",
            work_order="WO-cli",
        ),
        metadata=_md(brand.tokens["line"]),
        timeout=60,
    )
    codes = [c for r in responses for c in r.codes]
    batch = issuer_pb2.CodeBatch(
        batch_id="c-" + os.urandom(6).hex(), gtin=brand.gtin, serials=[c.serial for c in codes]
    )
    acks = list(
        world["issuer"].ReportCommissioned(
            iter([batch]), metadata=_md(brand.tokens["line"]), timeout=30
        )
    )
    assert acks[0].accepted == count
    return codes


def _export(world: dict[str, Any], name: str) -> Path:
    out = world["dir"] / name
    exported = sealmark(
        "keys",
        "export",
        "--tenant",
        world["brand"].tenant_id,
        "--out",
        str(out),
        dsn=world["dsn"],
        redis_url=world["redis_url"],
        env_extra=SECRETS,
    )
    assert exported.returncode == 0, exported.stderr
    return out


def verify(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """``sealmark verify ARGS…`` with no SEALMARK_* settings but ``env`` (and an unreachable
    database), reading ``stdin``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    environ.update(SEALMARK_DATABASE_URL=NOWHERE, SEALMARK_LOG_LEVEL="WARNING", LANG="C.UTF-8")
    environ.pop("LC_ALL", None)
    environ.pop("LC_MESSAGES", None)
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sealmark_app.cli.main", "verify", *args],
        env=environ,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tampered(code: issuer_pb2.IssuedCode) -> str:
    serial = code.serial
    changed = serial[:-1] + ("2" if serial[-1] != "2" else "3")
    return code.digital_link.replace(f"/21/{serial}?", f"/21/{changed}?")


# -- offline -----------------------------------------------------------------------------------


def test_offline_checks_every_printed_form_with_the_exported_keys(brand: dict[str, Any]) -> None:
    code = brand["codes"][0]
    keys = str(brand["keys"])
    for payload in (code.digital_link, code.element_string.replace(GS, "^")):
        result = verify(payload, "--offline", "--keys", keys)
        assert result.returncode == 0, (payload, result.stdout, result.stderr)
        lines = result.stdout.splitlines()
        assert lines[0] == f"signature valid — {ONLY_SIGNATURE}"
        assert f"serial     {code.serial}" in lines
        assert f"brand      {brand['brand'].tenant_id}" in lines
    # A scanner's output piped in: symbology identifier, GS separators, CR LF.
    piped = verify("-", "--offline", "--keys", keys, stdin=f"]d2{code.element_string}\r\n")
    assert piped.returncode == 0, piped.stdout + piped.stderr


def test_offline_takes_the_key_set_the_verifier_publishes(brand: dict[str, Any]) -> None:
    # What GET /keys?tenant=… serves (base64url public keys, "tenant").
    published = build_verifier(brand["container"]).key_set(brand["brand"].tenant_id, None)
    path = brand["dir"] / "published.json"
    path.write_text(json.dumps(published))
    code = brand["codes"][0]
    result = verify(code.digital_link, "--offline", "--keys", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("signature valid — ")


def test_offline_json(brand: dict[str, Any]) -> None:
    code = brand["codes"][0]
    result = verify("--offline", "--keys", str(brand["keys"]), "--json", code.digital_link)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["result"], document["trusted"]) == ("valid", True)
    assert document["code"]["serial"] == code.serial and document["code"]["lot"] == "LOT-CLI"
    assert document["code"]["key_id"] == code.key_id == document["key"]["key_id"]


def test_offline_refuses_a_tampered_or_unsigned_code(brand: dict[str, Any]) -> None:
    code, keys = brand["codes"][1], str(brand["keys"])
    tampered = verify(_tampered(code), "--offline", "--keys", keys)
    assert tampered.returncode == 1
    assert tampered.stdout.startswith(f"signature INVALID: key {code.key_id} did not sign")
    unsigned = verify(code.hri, "--offline", "--keys", keys)  # printed HRI omits (8030)
    assert unsigned.returncode == 1 and unsigned.stdout.startswith("no signature")
    junk = verify("hello", "--offline", "--keys", keys)
    assert junk.returncode == 1 and junk.stdout.startswith("not a code that can be checked")


def test_offline_with_a_bad_key_file_exits_2_naming_it(brand: dict[str, Any]) -> None:
    code = brand["codes"][0]
    missing = brand["dir"] / "missing.json"
    result = verify(code.digital_link, "--offline", "--keys", str(missing))
    assert result.returncode == 2
    assert result.stderr == f"sealmark: error: --keys: {missing}: no such file\n"
    broken = brand["dir"] / "broken.json"
    broken.write_text(brand["keys"].read_text()[:-20])
    result = verify(code.digital_link, "--offline", "--keys", str(broken))
    assert result.returncode == 2 and f"--keys: {broken}: not JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_offline_reports_a_revoked_key(brand: dict[str, Any]) -> None:
    # A brand of its own: revoking the shared brand's key would change the other tests' codes.
    container = brand["container"]
    other = seed_tenant(container.uow, container.clock, "vrev")
    world = {**brand, "brand": other}
    admin = _md(other.tokens["admin"])
    brand["issuer"].RotateKey(issuer_pb2.RotateKeyRequest(), metadata=admin, timeout=10)
    code = _issue(world, 1)[0]
    before = _export(world, "keys-before-revocation.json")
    brand["issuer"].RotateKey(
        issuer_pb2.RotateKeyRequest(revoke_previous=True, reason="key file leaked"),
        metadata=admin,
        timeout=10,
    )
    after = _export(world, "keys-after-revocation.json")
    result = verify(code.digital_link, "--offline", "--keys", str(after))
    assert result.returncode == 1
    first, second = result.stdout.splitlines()[:2]
    assert first.startswith(f"NOT TRUSTED: valid signature, but under key {code.key_id}, revoked")
    assert "(key file leaked)" in first
    assert second == ONLY_SIGNATURE
    assert f"key        {code.key_id} (Ed25519, created " in result.stdout
    assert ", REVOKED " in result.stdout
    # A key set exported before the revocation still trusts it: fetch keys again.
    assert verify(code.digital_link, "--offline", "--keys", str(before)).returncode == 0


# -- online ------------------------------------------------------------------------------------


def test_online_first_then_seen_before(brand: dict[str, Any]) -> None:
    code, target = brand["codes"][3], brand["target"]
    first = verify(code.digital_link, "--target", target, "--session", "cli-1", "--region", "DE")
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "AUTHENTIC: genuine, first verification"
    assert any(line.startswith("serial") and code.serial in line for line in lines)
    assert any(line.startswith("verification id") for line in lines)
    again = verify(
        "--json", code.element_string, "--target", target, "--session", "cli-2", "--region", "DE"
    )
    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["verdict"] == "VERDICT_AUTHENTIC_SEEN_BEFORE"
    assert document["first_verified_region"] == "DE" and document["session_count"] == 2
    assert document["product"]["lot"] == "LOT-CLI" and document["serial"] == code.serial


def test_online_pin_then_a_copy_reusing_it(brand: dict[str, Any]) -> None:
    code, target = brand["codes"][4], brand["target"]
    opened = verify(code.digital_link, "--target", target, "--pin", code.pin, "--session", "own")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert "confirmed: first opening" in opened.stdout
    copy = verify(code.digital_link, "--target", target, "--pin", code.pin, "--session", "copy")
    assert copy.returncode == 1
    assert copy.stdout.startswith("SUSPECT_CLONE: ")
    assert "entered, not confirmed" in copy.stdout
    another = verify(
        code.digital_link, "--target", target, "--pin", code.pin, "--session", "copy-2", "--json"
    )
    assert another.returncode == 1
    document = json.loads(another.stdout)
    assert document["verdict"] == "VERDICT_SUSPECT_CLONE" and not document["pin_confirmed"]
    reused = [r for r in document["reasons"] if r["code"] == "pin_reused"]
    assert reused and f"  - {reused[0]['message']}  [{reused[0]['rule']}]" in copy.stdout


def test_online_counterfeit_and_invalid_exit_1(brand: dict[str, Any]) -> None:
    code, target = brand["codes"][5], brand["target"]
    forged = verify(_tampered(code), "--target", target)
    assert forged.returncode == 1 and forged.stdout.startswith("COUNTERFEIT: ")
    junk = verify("(01)00012345600012(21)ABC", "--target", target)
    assert junk.returncode == 1 and junk.stdout.startswith("INVALID: ")


def test_online_answers_in_the_users_language(brand: dict[str, Any]) -> None:
    code, target = brand["codes"][6], brand["target"]
    result = verify(code.digital_link, "--target", target, LANG="zh_CN.UTF-8")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("AUTHENTIC: 正品，首次验证")


def test_online_failures_exit_2(brand: dict[str, Any]) -> None:
    oversized = verify("x" * 5000, "--target", brand["target"])
    assert oversized.returncode == 2
    assert oversized.stderr.startswith("sealmark: INVALID_ARGUMENT: ")
    assert "payload" in oversized.stderr
    down = verify(brand["codes"][7].digital_link, "--target", "127.0.0.1:1")
    assert down.returncode == 2 and down.stderr.startswith("sealmark: UNAVAILABLE: ")
    assert down.stdout == "" and "Traceback" not in down.stderr
