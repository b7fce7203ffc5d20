"""The `sealmark` command against a real database: happy paths, --json, and bad input that
names the field and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import ROOT, sealmark

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(pg_dsn: str, redis_url: str):  # type: ignore[no-untyped-def]
    return lambda *args: sealmark(*args, dsn=pg_dsn, redis_url=redis_url)


def test_brand_product_token_lifecycle(run) -> None:  # type: ignore[no-untyped-def]
    created = run(
        "--json",
        "tenants",
        "create",
        "cli-brand",
        "--name",
        "CLI Brand",
        "--prefix",
        "9527771",
        "--resolver-host",
        "id.cli.example",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["company_prefixes"] == ["9527771"]
    product = run(
        "--json",
        "products",
        "add",
        "--tenant",
        "cli-brand",
        "--gtin",
        "9527771000004",
        "--name",
        "Tonic",
        "--market",
        "DE",
    )
    assert product.returncode == 0, product.stderr
    assert json.loads(product.stdout)["gtin"] == "09527771000004"
    token = run(
        "--json", "tokens", "create", "--tenant", "cli-brand", "--role", "line", "--name", "line 1"
    )
    assert token.returncode == 0, token.stderr
    token_data = json.loads(token.stdout)
    assert token_data["token"].startswith("smk_") and token_data["roles"] == ["line"]
    listed = run("--json", "tokens", "list", "--tenant", "cli-brand")
    assert token_data["token"] not in listed.stdout
    assert [t["id"] for t in json.loads(listed.stdout)] == [token_data["id"]]
    assert run("tokens", "revoke", "--tenant", "cli-brand", token_data["id"]).returncode == 0
    shown = run("--json", "products", "show", "09527771000004")
    assert json.loads(shown.stdout)["name"] == "Tonic"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            [
                "tenants",
                "create",
                "Bad_Id",
                "--name",
                "x",
                "--prefix",
                "9527772",
                "--resolver-host",
                "h.example",
            ],
            "Tenant.id",
        ),
        (
            [
                "tenants",
                "create",
                "okid",
                "--name",
                "x",
                "--prefix",
                "95x",
                "--resolver-host",
                "h.example",
            ],
            "Tenant.company_prefixes",
        ),
        (
            [
                "tenants",
                "create",
                "okid",
                "--name",
                "x",
                "--prefix",
                "9527773",
                "--resolver-host",
                "https://h.example/",
            ],
            "Tenant.resolver_host",
        ),
        (
            ["products", "add", "--tenant", "cli-brand", "--gtin", "9527771000002", "--name", "x"],
            "gtin",
        ),
        (
            ["products", "add", "--tenant", "cli-brand", "--gtin", "04012345111118", "--name", "x"],
            "gtin: 04012345111118 is not under a company prefix",
        ),
        (
            [
                "products",
                "add",
                "--tenant",
                "cli-brand",
                "--gtin",
                "9527771000011",
                "--name",
                "x",
                "--market",
                "Germany",
            ],
            "Product.default_market",
        ),
        (["tokens", "create", "--tenant", "cli-brand", "--role", "root", "--name", "x"], "roles"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(run, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    tenants = json.loads(run("--json", "tenants", "list").stdout)
    assert "okid" not in [t["id"] for t in tenants]


def test_unknown_tenant_is_reported(run) -> None:  # type: ignore[no-untyped-def]
    result = run("products", "list", "--tenant", "nobody-here")
    assert result.returncode == 1 and "NotFound" in result.stderr


def test_bad_setting_names_the_variable(pg_dsn: str, redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(SEALMARK_GRPC_PORT="port")
    result = subprocess.run(
        [sys.executable, "-m", "sealmark_app.cli.main", "tenants", "list"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "SEALMARK_GRPC_PORT" in result.stderr


def test_bench_lists_the_baselines() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sealmark_app.cli.main", "bench", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "ed25519_sign_per_s" in result.stdout and "grpc_echo_rps" in result.stdout


def test_keys_need_configured_secrets_with_external_servers(run) -> None:  # type: ignore[no-untyped-def]
    result = run("keys", "rotate", "--tenant", "cli-brand")
    assert result.returncode == 2
    assert "SEALMARK_SECRET_PEPPER" in result.stderr


def test_keys_rotate_list_export(pg_dsn: str, redis_url: str, tmp_path: Path) -> None:
    env_extra = {
        "SEALMARK_SECRET_PEPPER": "cli-pepper-0123456789",
        "SEALMARK_KEY_PASSPHRASE": "cli-passphrase",
    }
    created = _with_env(
        env_extra,
        pg_dsn,
        redis_url,
        "tenants",
        "create",
        "keys-brand",
        "--name",
        "K",
        "--prefix",
        "9527781",
        "--resolver-host",
        "k.example",
    )
    assert created.returncode == 0, created.stderr
    for _ in range(2):
        rotated = _with_env(
            env_extra, pg_dsn, redis_url, "--json", "keys", "rotate", "--tenant", "keys-brand"
        )
        assert rotated.returncode == 0, rotated.stderr
    out = tmp_path / "keys.json"
    exported = _with_env(
        env_extra, pg_dsn, redis_url, "keys", "export", "--tenant", "keys-brand", "--out", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    document = json.loads(out.read_text())
    assert [k["key_id"] for k in document["keys"]] == ["01", "02"]
    assert (
        document["keys"][0]["retired_at"] is not None and document["keys"][1]["retired_at"] is None
    )


def _with_env(
    extra: dict[str, str], dsn: str, redis_url: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return sealmark(*args, dsn=dsn, redis_url=redis_url, env_extra=extra)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["label", "https://example.com/no-gtin", "--symbology", "qr", "--out", "x.png"], "data"),
        (["label", "0012345", "--symbology", "gs1-128", "--out", "x.png"], "data"),
        (
            [
                "label",
                "https://id.gs1.org/01/09520123456788/21/1",
                "--symbology",
                "qr",
                "--out",
                "x.gif",
            ],
            "--out",
        ),
    ],
)
def test_label_bad_input(args: list[str], needle: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sealmark_app.cli.main", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr.lower() and "Traceback" not in result.stderr


def test_label_renders_a_decodable_datamatrix(tmp_path: Path) -> None:
    import zxingcpp
    from PIL import Image

    from sealmark.gs1 import build_element_string, parse_element_string, parse_hri

    data = build_element_string(
        [("01", "09520123456788"), ("17", "301231"), ("10", "L1"), ("21", "ABC123")]
    )
    out = tmp_path / "dm.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sealmark_app.cli.main",
            "label",
            data.replace("\x1d", "^"),
            "--symbology",
            "datamatrix",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    decoded = zxingcpp.read_barcodes(Image.open(out))
    assert decoded[0].symbology_identifier == "]d2"
    text = decoded[0].text  # zxing-cpp prints GS1 content as HRI
    assert parse_hri(text) == parse_element_string(data)
