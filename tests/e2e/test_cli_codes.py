"""`sealmark codes commission` against a real Issuer: every way of naming the codes, --json,
rejected codes, retries, and bad input that names the argument and commissions nothing."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from sealmark.server.app import create_server
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.root import binding_for
from tests.e2e.conftest import _md, make_container
from tests.support.cli import sealmark
from tests.support.tenants import seed_tenant

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def line(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url)
    brand = seed_tenant(container.uow, container.clock, "cod")
    running = create_server([binding_for("issuer", container)], container.authenticator)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = issuer_pb2_grpc.IssuerStub(channel)
    stub.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(brand.tokens["admin"]), timeout=10)
    target = f"127.0.0.1:{running.port}"
    token = brand.tokens["line"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        """The CLI with the line token and this Issuer as its defaults (SEALMARK_TOKEN,
        SEALMARK_GRPC_PORT), so that ``args`` may end in ``-- SERIAL…``."""
        env = {"SEALMARK_TOKEN": token, "SEALMARK_GRPC_PORT": str(running.port)}
        return sealmark(*args, dsn=pg_dsn, redis_url=redis_url, env_extra=env)

    yield {"stub": stub, "token": token, "gtin": brand.gtin, "run": run, "target": target}
    channel.close()
    running.stop(0)
    container.close()


def _pool(line: dict[str, Any], quantity: int = 5) -> tuple[str, list[issuer_pb2.IssuedCode]]:
    request_id = "cli-codes-" + os.urandom(6).hex()
    responses = line["stub"].IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id=request_id,
            gtin=line["gtin"],
            lot="L1",
            expiry="301231",
            quantity=quantity,
            line_id="line-1",
            work_order="WO-cli",
        ),
        metadata=_md(line["token"]),
        timeout=60,
    )
    return request_id, [c for r in responses for c in r.codes]


def _commissioned(line: dict[str, Any], request_id: str) -> int:
    pool = line["stub"].GetPool(
        issuer_pb2.GetPoolRequest(request_id=request_id), metadata=_md(line["token"]), timeout=10
    )
    return int(pool.commissioned)


def _json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_by_gtin_and_serials_then_again(line: dict[str, Any]) -> None:
    request_id, codes = _pool(line)
    serials = [c.serial for c in codes[:3]]
    run = line["run"]
    first = _json(run("--json", "codes", "commission", "--gtin", line["gtin"], "--", *serials))
    assert (first["codes"], first["commissioned"], first["already_commissioned"]) == (3, 3, 0)
    assert first["rejected"] == [] and first["batches"] == 1
    assert _commissioned(line, request_id) == 3
    # Run again (a retry after a timeout): nothing is commissioned twice.
    again = _json(run("--json", "codes", "commission", "--gtin", line["gtin"], "--", *serials))
    assert (again["commissioned"], again["already_commissioned"]) == (0, 3)


def test_scanned_codes_of_every_form(line: dict[str, Any]) -> None:
    request_id, codes = _pool(line, 4)
    gtin = line["gtin"]
    forms = [
        codes[0].digital_link,
        codes[1].element_string,
        codes[2].hri,
        f"{gtin.lstrip('0')}/{codes[3].serial}",  # GTIN-13 typed without its leading zero
    ]
    done = line["run"]("codes", "commission", *forms)
    assert done.returncode == 0, done.stderr
    assert "commissioned          4" in done.stdout
    assert _commissioned(line, request_id) == 4


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".txt"])
def test_a_file_of_codes(line: dict[str, Any], tmp_path: Path, suffix: str) -> None:
    request_id, codes = _pool(line, 6)
    path = tmp_path / f"codes{suffix}"
    if suffix == ".jsonl":  # as `sealmark issue --out codes.jsonl` writes it
        path.write_text(
            "".join(
                json.dumps({"index": c.index, "serial": c.serial, "digital_link": c.digital_link})
                + "\n"
                for c in codes
            )
        )
    elif suffix == ".csv":  # as `sealmark issue --out codes.csv` writes it
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["index", "serial", "element_string", "digital_link", "hri", "pin"])
            for c in codes:
                writer.writerow([c.index, c.serial, c.element_string, c.digital_link, c.hri, ""])
    else:
        # As a scanner types them: element strings (GS inside) and HRI, CRLF line ends.
        scans = [c.element_string if c.index % 2 else c.hri for c in codes]
        path.write_text("# scanned at the end of line 1\r\n\r\n" + "\r\n".join(scans))
    summary = _json(line["run"]("--json", "codes", "commission", "--file", str(path)))
    assert summary["commissioned"] == 6
    assert _commissioned(line, request_id) == 6


def test_a_whole_pool_in_batches(line: dict[str, Any]) -> None:
    request_id, _ = _pool(line, 25)
    summary = _json(
        line["run"]("--json", "codes", "commission", "--pool", request_id, "--batch-size", "10")
    )
    assert (summary["codes"], summary["commissioned"], summary["batches"]) == (25, 25, 3)
    assert _commissioned(line, request_id) == 25


def test_rejected_codes_are_listed_and_fail_the_command(line: dict[str, Any]) -> None:
    request_id, codes = _pool(line, 2)
    done = line["run"](
        "--json", "codes", "commission", "--gtin", line["gtin"], codes[0].serial, "NEVERISSUED1"
    )
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert summary["commissioned"] == 1
    assert [(r["serial"], r["error_code"]) for r in summary["rejected"]] == [
        ("NEVERISSUED1", "NOT_FOUND")
    ]
    assert "1 of 2 codes rejected" in done.stderr
    assert _commissioned(line, request_id) == 1


def test_an_unknown_pool_is_not_found(line: dict[str, Any]) -> None:
    done = line["run"]("codes", "commission", "--pool", "no-such-pool")
    assert done.returncode == 1
    assert done.stderr.startswith("sealmark: NOT_FOUND:"), done.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "CODE: give exactly one of CODE…, --file, --pool (got none)"),
        (["x/1", "--pool", "p"], "got CODE, --pool"),
        (["--batch-size", "0", "x"], "--batch-size: 0, want 1..10000"),
        (["--batch-size", "10001", "x"], "--batch-size: 10001"),
        (["hello"], "CODE: 'hello': want GTIN/SERIAL"),
        (["12345/ABC"], "GTIN"),
        (["09520123456788/"], "the serial after '/' is empty"),
        (["https://id.example/01/09520123456788"], "needs AI 01 and AI 21"),
        (["--gtin", "123", "ABC"], "--gtin"),
        (["--gtin", "09520123456788", "--pool", "p"], "--gtin: not with --pool"),
    ],
)
def test_bad_input_names_the_argument(line: dict[str, Any], args: list[str], needle: str) -> None:
    done = line["run"]("codes", "commission", *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("sealmark: error: "), done.stderr
    assert needle in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.jsonl", None, "--file: cannot read"),
        (
            "bad.jsonl",
            '{"serial": "A", "gtin": "09520123456788"}\nnot json\n',
            "bad.jsonl:2: not JSON",
        ),
        ("list.jsonl", "[1, 2]\n", "want a JSON object per line"),
        ("nogtin.jsonl", '{"serial": "A"}\n', "no 'gtin', 'digital_link' or 'element_string'"),
        ("noserial.csv", "index,hri\n0,(01)09520123456788(21)A\n", "no 'serial' column"),
        ("empty.txt", "# nothing yet\n", "--file: no codes in it"),
        ("mixed.txt", "(01)09520123456788(21)A\nbanana\n", "mixed.txt:2: 'banana'"),
        ("latin1.txt", b"\xe9\n", "--file: cannot read"),
    ],
)
def test_a_bad_file_names_the_file_and_line(
    line: dict[str, Any], tmp_path: Path, name: str, content: str | bytes | None, needle: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    done = line["run"]("codes", "commission", "--file", str(path))
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr, done.stderr


def test_no_token_names_it(pg_dsn: str, redis_url: str, line: dict[str, Any]) -> None:
    done = sealmark(
        "codes", "commission", "--target", line["target"], "x/1", dsn=pg_dsn, redis_url=redis_url
    )
    assert done.returncode == 2
    assert "--token" in done.stderr
