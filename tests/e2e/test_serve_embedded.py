"""`sealmark serve` on the embedded default, as `make run` starts it: real processes, real ports."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from tests.support.procs import processes_in

pytestmark = pytest.mark.e2e

SERVICES = [
    "sealmark.v1.Issuer",
    "sealmark.v1.Aggregator",
    "sealmark.v1.Verifier",
    "sealmark.v1.Audit",
]


def _serve(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(
        SEALMARK_DATA_DIR=str(data_dir),
        SEALMARK_GRPC_PORT="0",
        SEALMARK_METRICS_PORT="0",
        SEALMARK_VERIFY_HTTP_PORT="0",
        SEALMARK_DASHBOARD_HTTP_PORT="0",
        SEALMARK_SHUTDOWN_GRACE_S="2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealmark_app.cli.main", "serve", "--seed-demo", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Stop with Ctrl-C"):
            found = re.search(r"Sealmark is up: gRPC [\d.]+:(\d+)", "".join(lines))
            assert found, "".join(lines)
            return proc, int(found.group(1)), lines
    proc.kill()
    raise AssertionError("serve did not come up:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str], sig: int) -> str:
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=60)
    return rest


def _issue_with_the_cli(output: str, port: int, tmp_path: Path) -> None:
    """The demo's printed `sealmark issue` line works: codes out, labels that decode."""
    import json

    import zxingcpp
    from PIL import Image

    line = re.search(r"line\s+(smk_\S+)", output)
    assert line
    out, labels = tmp_path / "codes.jsonl", tmp_path / "labels"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sealmark_app.cli.main",
            "issue",
            "--target",
            f"127.0.0.1:{port}",
            "--token",
            line.group(1),
            "--gtin",
            "09520123456788",
            "--lot",
            "LOT1",
            "--expiry",
            "2030-12-31",
            "--count",
            "5",
            "--out",
            str(out),
            "--labels",
            str(labels),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    codes = [json.loads(row) for row in out.read_text().splitlines()]
    assert len(codes) == 5 and len({c["serial"] for c in codes}) == 5
    pngs = sorted(labels.glob("*.png"))
    assert len(pngs) == 5
    # Only the QR symbology: random serials occasionally make a QR pattern that zxing-cpp's
    # linear readers also take for a short 1-D code (CI once read a stray '6963').
    decoded = zxingcpp.read_barcodes(Image.open(pngs[0]), formats=zxingcpp.BarcodeFormat.QRCode)
    assert [d.text for d in decoded] == [codes[0]["digital_link"]]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_embedded_health_and_clean_stop(tmp_path: Path, sig: int) -> None:
    data_dir = tmp_path / "data"
    proc, port, lines = _serve(data_dir)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ["", *SERVICES]:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        output = "".join(lines)
        assert "Demo brand 'demo'" in output
        admin = re.search(r"admin\s+(smk_[a-z2-7]{12}_\S+)", output)
        assert admin
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            listed = issuer_pb2_grpc.IssuerStub(channel).ListProducts(
                issuer_pb2.ListProductsRequest(),
                metadata=[("authorization", f"Bearer {admin.group(1)}")],
                timeout=5,
            )
        assert [p.gtin for p in listed.products] == ["09520123456788"]
        metrics_url = re.search(r"metrics (http://\S+/metrics)", output)
        assert metrics_url
        with urllib.request.urlopen(metrics_url.group(1), timeout=5) as response:  # noqa: S310
            metrics = response.read().decode()
        assert (
            'sealmark_rpc_total{code="OK",method="/sealmark.v1.Issuer/ListProducts"} 1.0' in metrics
        )
        if sig == signal.SIGINT:
            _issue_with_the_cli(output, port, tmp_path)
    finally:
        rest = _stop(proc, sig)
    assert proc.returncode == 0, rest
    assert processes_in(data_dir) == []
    # Second start on the kept data: fast, not re-seeded, same demo tokens.
    started = time.monotonic()
    proc2, _port2, lines2 = _serve(data_dir)
    elapsed = time.monotonic() - started
    _stop(proc2, signal.SIGTERM)
    assert proc2.returncode == 0
    assert elapsed < 30, f"second start took {elapsed:.1f}s"
    tokens_first = re.findall(r"smk_\S+", "".join(lines))
    tokens_second = re.findall(r"smk_\S+", "".join(lines2))
    assert tokens_first and tokens_first == tokens_second
    assert processes_in(data_dir) == []
