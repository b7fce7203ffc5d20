"""The consumer page over HTTPS: the process's server certificate, TLS 1.2+, no plaintext on
the same port, and certificate reloads taken without a restart. Real sockets on real ports;
the verification use case is the unit tests' fake."""

from __future__ import annotations

import http.client
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealmark.server.tls import ServerCertificates, TlsFiles
from tests.support.certs import TestCA
from tests.unit.test_verifier_http import FakeVerifier
from verifier.http import VerifyHttp, start_http


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[VerifyHttp, ServerCertificates, TestCA, Path]]:
    ca = TestCA()
    cert, key = ca.server(cn="page").write(tmp_path, "server")
    certs = ServerCertificates(TlsFiles(cert, key))
    running, _ = start_http(FakeVerifier(), "127.0.0.1", 0, tls=certs.https_context())
    yield running, certs, ca, tmp_path
    running.stop()


def _client(ca: TestCA, tmp_path: Path, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.write(tmp_path, "client-ca")))
    if maximum is not None:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old versions at all
        with warnings.catch_warnings():  # offering TLS 1.1 on purpose: Python warns it is old
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.maximum_version = maximum
    return context


def _get(port: int, context: ssl.SSLContext, target: str = "/healthz") -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        conn.request("GET", target)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def _subject_cn(port: int, context: ssl.SSLContext) -> str:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None
    return dict(part[0] for part in cert["subject"])["commonName"]


def test_the_page_speaks_https_with_the_server_certificate(
    served: tuple[VerifyHttp, ServerCertificates, TestCA, Path],
) -> None:
    running, _, ca, tmp_path = served
    assert running.url.startswith("https://")
    status, body = _get(running.port, _client(ca, tmp_path))
    assert status == 200 and b"status" in body
    assert _subject_cn(running.port, _client(ca, tmp_path)) == "page"


def test_plaintext_http_on_the_tls_port_gets_no_page(
    served: tuple[VerifyHttp, ServerCertificates, TestCA, Path],
) -> None:
    running = served[0]
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = b""
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/1.1 200" not in answer and b"status" not in answer


def test_tls_below_1_2_is_refused(
    served: tuple[VerifyHttp, ServerCertificates, TestCA, Path],
) -> None:
    running, _, ca, tmp_path = served
    assert _get(running.port, _client(ca, tmp_path, ssl.TLSVersion.TLSv1_2))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        _get(running.port, _client(ca, tmp_path, ssl.TLSVersion.TLSv1_1))


def test_a_reloaded_certificate_is_served_without_a_restart(
    served: tuple[VerifyHttp, ServerCertificates, TestCA, Path],
) -> None:
    running, certs, ca, tmp_path = served
    ca.server(cn="rotated").write(tmp_path, "server")  # over the served files
    assert certs.reload()
    assert _subject_cn(running.port, _client(ca, tmp_path)) == "rotated"
    assert _get(running.port, _client(ca, tmp_path))[0] == 200
