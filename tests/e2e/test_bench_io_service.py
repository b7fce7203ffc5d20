"""The same-I/O baseline of ``verify_rps`` served as the bench serves it: ``sealmark serve``
with the baseline beside the Verifier, two serving processes, both started through the
bench's command, so each serves the baseline and ``Verify`` on the same port (issue 22,
item 1)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sealmark.v1 import verifier_pb2, verifier_pb2_grpc
from sealmark_app.bench import io_service
from sealmark_app.bench.load import client_channels
from sealmark_app.bench.profile import serving_pids
from sealmark_app.bench.suite import GTIN, store_commissioned_codes, suite_server

pytestmark = pytest.mark.e2e

CONNECTIONS = 16  # all on one of two processes: 2 * 2**-16


def test_every_serving_process_answers_the_baseline_and_verify() -> None:
    settings = {"SEALMARK_PROCESSES": "2", "SEALMARK_VERIFY_HTTP_PORT": "0"}
    with suite_server(["verifier"], settings, command=io_service.COMMAND) as suite:
        store_commissioned_codes(suite.dsn, 0, 50, serial_prefix="T", lot="TEST")
        port = int(suite.target.rsplit(":", 1)[1])
        deadline = time.monotonic() + 60
        while len(pids := serving_pids(port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # the copy starts once the first process is up
        assert len(pids) == 2
        for pid in pids:
            assert "sealmark_app.bench.io_service" in Path(f"/proc/{pid}/cmdline").read_text()
        channels = client_channels(suite.target, CONNECTIONS)
        try:
            for n, channel in enumerate(channels):
                lookup = channel.unary_unary(io_service.METHOD)
                key = f"{GTIN}T{n:013d}".encode()
                assert lookup(key, timeout=10) == b"commissioned"
                assert lookup(f"{GTIN}NOPE{n}".encode(), timeout=10) == b""
                answer = verifier_pb2_grpc.VerifierStub(channel).Verify(
                    verifier_pb2.VerifyRequest(payload="not a code"), timeout=10
                )
                assert answer.verdict == verifier_pb2.VERDICT_INVALID
        finally:
            for channel in channels:
                channel.close()
