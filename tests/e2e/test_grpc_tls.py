"""gRPC over TLS and mutual TLS, through real servers on real ports with real storage and real
certificates (made by ``cryptography`` in the test): handshakes, client certificates mapped to
tenants and roles, certificate rotation under an open stream, and the refusals."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from sealmark.errors import InvalidArgument
from sealmark.server.app import RunningServer, create_server
from sealmark.server.tls import ServerCertificates, TlsFiles
from sealmark.settings import load_settings
from sealmark.tenancy import cert_usecases
from sealmark.tenancy.certs import ClientCert, MatchKind
from sealmark.v1 import issuer_pb2, issuer_pb2_grpc
from sealmark_app.cli.serve import start_metrics
from sealmark_app.root import binding_for
from sealmark_app.root.container import CachingCertAuthenticator, Container
from tests.e2e.conftest import make_container
from tests.support.certs import Issued, TestCA
from tests.support.cli import ROOT, sealmark
from tests.support.tenants import Brand, seed_tenant

pytestmark = pytest.mark.e2e
Code = grpc.StatusCode
ANY_IPV4 = "0.0.0.0"  # noqa: S104 (what the refusal is about)


def _md(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def _channel(port: int, trust: bytes, client: Issued | None = None) -> grpc.Channel:
    """A channel on a connection of its own (gRPC shares equal subchannels otherwise)."""
    credentials = grpc.ssl_channel_credentials(
        trust, client.key_pem if client else None, client.cert_pem if client else None
    )
    return grpc.secure_channel(
        f"127.0.0.1:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)]
    )


def _list(port: int, trust: bytes, client: Issued | None, token: str | None = None) -> Any:
    with _channel(port, trust, client) as channel:
        stub = issuer_pb2_grpc.IssuerStub(channel)
        return stub.ListProducts(
            issuer_pb2.ListProductsRequest(), metadata=_md(token) if token else None, timeout=10
        )


def _code_of(call: Any, *args: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)
    code: grpc.StatusCode = caught.value.code()
    return code


def _register(
    world: dict[str, Any], brand: Brand, kind: MatchKind, value: str, roles: list[str]
) -> ClientCert:
    container: Container = world["container"]
    return cert_usecases.register_client_cert(
        container.uow,
        container.clock,
        os.urandom,
        tenant_id=brand.tenant_id,
        roles=roles,
        name="test",
        kind=kind,
        value=value,
    )


def _subject(issued: Issued) -> str:
    return issued.cert.subject.rfc4514_string()


def _serve(container: Container, files: TlsFiles) -> tuple[RunningServer, ServerCertificates]:
    certs = ServerCertificates(files)
    running = create_server(
        [binding_for("issuer", container)],
        container.authenticator,
        tls=certs,
        # No cache: a registration or revocation shows at once.
        authenticate_cert=CachingCertAuthenticator(container.uow, ttl_s=0.0),
    )
    return running, certs


@pytest.fixture(scope="module")
def world(pg_dsn: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pki = tmp_path_factory.mktemp("pki")
    ca, stranger = TestCA("Plant CA"), TestCA("Stranger CA")
    cert, key = ca.server().write(pki, "server")
    files = TlsFiles(cert, key, ca.write(pki))
    container = make_container(pg_dsn, redis_url)
    a = seed_tenant(container.uow, container.clock, "tlsa")
    b = seed_tenant(container.uow, container.clock, "tlsb")
    running, _ = _serve(container, files)
    world = {
        "container": container,
        "ca": ca,
        "stranger": stranger,
        "port": running.port,
        "a": a,
        "b": b,
        "files": files,
        "pki": pki,
        "dsn": pg_dsn,
        "redis": redis_url,
    }
    yield world
    running.stop(0)
    container.close()


def _gtins(response: Any) -> set[str]:
    return {p.gtin for p in response.products}


def test_a_registered_subject_is_a_credential(world: dict[str, Any]) -> None:
    ca, a = world["ca"], world["a"]
    line = ca.client(f"line-{os.urandom(3).hex()}")
    _register(world, a, MatchKind.SUBJECT, _subject(line), ["line"])
    assert _gtins(_list(world["port"], ca.pem, line)) == {a.gtin}  # no token at all


def test_a_registered_san_is_a_credential(world: dict[str, Any]) -> None:
    ca, b = world["ca"], world["b"]
    uri = f"spiffe://plant.example/line/{os.urandom(3).hex()}"
    line = ca.client("shared-name", sans=[x509.UniformResourceIdentifier(uri)])
    _register(world, b, MatchKind.SAN, f"URI:{uri}", ["line"])
    assert _gtins(_list(world["port"], ca.pem, line)) == {b.gtin}


def test_ip_and_email_sans_are_credentials(world: dict[str, Any]) -> None:
    ca, a = world["ca"], world["a"]
    n = int.from_bytes(os.urandom(2), "big")
    ip, email = f"fd00::{n:x}", f"line-{n}@plant.example"
    by_ip = ca.client("ip-line", sans=[x509.IPAddress(ipaddress.ip_address(ip))])
    by_email = ca.client("email-line", sans=[x509.RFC822Name(email)])
    _register(world, a, MatchKind.SAN, f"IP:{ip}", ["line"])
    _register(world, a, MatchKind.SAN, f"email:{email}", ["line"])
    assert _gtins(_list(world["port"], ca.pem, by_ip)) == {a.gtin}
    assert _gtins(_list(world["port"], ca.pem, by_email)) == {a.gtin}


def test_certificates_go_through_the_method_policy(world: dict[str, Any]) -> None:
    ca, a = world["ca"], world["a"]
    line = ca.client(f"line-{os.urandom(3).hex()}")
    _register(world, a, MatchKind.SUBJECT, _subject(line), ["line"])
    with _channel(world["port"], ca.pem, line) as channel:
        stub = issuer_pb2_grpc.IssuerStub(channel)
        assert _code_of(stub.RotateKey, issuer_pb2.RotateKeyRequest()) == Code.PERMISSION_DENIED


def test_an_unregistered_certificate_is_unauthenticated(world: dict[str, Any]) -> None:
    ca, a = world["ca"], world["a"]
    nobody = ca.client("nobody-registered-me")
    assert _code_of(_list, world["port"], ca.pem, nobody) == Code.UNAUTHENTICATED
    # Beside a token it only carried TLS: the token decides.
    assert _gtins(_list(world["port"], ca.pem, nobody, a.tokens["line"])) == {a.gtin}


def test_a_revoked_certificate_is_unauthenticated_even_with_a_token(
    world: dict[str, Any],
) -> None:
    ca, a, container = world["ca"], world["a"], world["container"]
    line = ca.client(f"line-{os.urandom(3).hex()}")
    reg = _register(world, a, MatchKind.SUBJECT, _subject(line), ["line"])
    assert _gtins(_list(world["port"], ca.pem, line)) == {a.gtin}
    cert_usecases.revoke_client_cert(
        container.uow, container.clock, tenant_id=a.tenant_id, cert_id=reg.id
    )
    assert _code_of(_list, world["port"], ca.pem, line) == Code.UNAUTHENTICATED
    assert _code_of(_list, world["port"], ca.pem, line, a.tokens["admin"]) == Code.UNAUTHENTICATED


def test_token_and_certificate_of_different_tenants_is_permission_denied(
    world: dict[str, Any],
) -> None:
    ca, a, b = world["ca"], world["a"], world["b"]
    line_a = ca.client(f"line-{os.urandom(3).hex()}")
    _register(world, a, MatchKind.SUBJECT, _subject(line_a), ["line"])
    code = _code_of(_list, world["port"], ca.pem, line_a, b.tokens["line"])
    assert code == Code.PERMISSION_DENIED
    # The same tenant's token with it is fine, and the token's roles decide.
    assert _gtins(_list(world["port"], ca.pem, line_a, a.tokens["admin"])) == {a.gtin}


def test_a_client_without_a_certificate_is_refused_at_the_handshake(
    world: dict[str, Any],
) -> None:
    code = _code_of(_list, world["port"], world["ca"].pem, None, world["a"].tokens["line"])
    assert code == Code.UNAVAILABLE


def test_a_certificate_of_another_ca_is_refused(world: dict[str, Any]) -> None:
    ca, stranger, a = world["ca"], world["stranger"], world["a"]
    impostor = stranger.client("line-impostor")
    _register(world, a, MatchKind.SUBJECT, _subject(impostor), ["line"])  # mapping is no help
    assert _code_of(_list, world["port"], ca.pem, impostor) == Code.UNAVAILABLE


def test_a_client_that_trusts_another_ca_refuses_the_server(world: dict[str, Any]) -> None:
    ca, stranger, a = world["ca"], world["stranger"], world["a"]
    line = ca.client(f"line-{os.urandom(3).hex()}")
    _register(world, a, MatchKind.SUBJECT, _subject(line), ["line"])
    assert _code_of(_list, world["port"], stranger.pem, line) == Code.UNAVAILABLE


def test_an_expired_client_certificate_is_refused(world: dict[str, Any]) -> None:
    ca, a = world["ca"], world["a"]
    old = ca.client(f"line-{os.urandom(3).hex()}", expired=True)
    _register(world, a, MatchKind.SUBJECT, _subject(old), ["line"])
    assert _code_of(_list, world["port"], ca.pem, old) == Code.UNAVAILABLE


def test_an_expired_server_certificate_is_refused_by_clients(
    world: dict[str, Any], tmp_path: Path
) -> None:
    ca = world["ca"]
    cert, key = ca.server(expired=True).write(tmp_path, "expired")
    running, _ = _serve(world["container"], TlsFiles(cert, key, world["files"].client_ca))
    try:
        client = ca.client("nobody-registered-me")
        code = _code_of(_list, running.port, ca.pem, client, world["a"].tokens["line"])
        assert code == Code.UNAVAILABLE
    finally:
        running.stop(0)


def _handshake(port: int, world: dict[str, Any], version: ssl.TLSVersion, tmp: Path) -> str:
    ca = world["ca"]
    cert, key = ca.client("probe").write(tmp, "probe")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca.pem.decode())
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer old versions at all
    with warnings.catch_warnings():  # offering TLS 1.1 on purpose: Python warns that it's old
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


def test_tls_1_2_and_1_3_only(world: dict[str, Any], tmp_path: Path) -> None:
    port = world["port"]
    assert _handshake(port, world, ssl.TLSVersion.TLSv1_3, tmp_path) == "TLSv1.3"
    assert _handshake(port, world, ssl.TLSVersion.TLSv1_2, tmp_path) == "TLSv1.2"
    # The same client offering at most TLS 1.1 (which it may: SECLEVEL=0): the server ends the
    # handshake (it logs UNSUPPORTED_PROTOCOL and closes; the client sees the EOF).
    with pytest.raises(ssl.SSLError):
        _handshake(port, world, ssl.TLSVersion.TLSv1_1, tmp_path)


def test_rotation_mid_stream_keeps_the_open_stream(world: dict[str, Any], tmp_path: Path) -> None:
    ca, a, container = world["ca"], world["a"], world["container"]
    cert, key = ca.server().write(tmp_path, "server")
    files = TlsFiles(cert, key, world["files"].client_ca)
    running, certs = _serve(container, files)
    try:
        line = ca.client(f"line-{os.urandom(3).hex()}")
        _register(world, a, MatchKind.SUBJECT, _subject(line), ["line", "admin"])
        with _channel(running.port, ca.pem, line) as channel:
            stub = issuer_pb2_grpc.IssuerStub(channel)
            stub.RotateKey(issuer_pb2.RotateKeyRequest(), timeout=30)
            stream = stub.IssueCodes(
                issuer_pb2.IssueCodesRequest(
                    request_id="tls-rotate-" + os.urandom(4).hex(),
                    gtin=a.gtin,
                    lot="LOT-TLS",
                    expiry="301231",
                    quantity=3000,
                    line_id="line-tls",
                    work_order="WO-TLS",
                    batch_size=100,
                ),
                timeout=120,
            )
            first = next(stream)
            # Rotate: a server certificate from a new CA, written over the served files.
            new_ca = TestCA("Plant CA 2026")
            new = new_ca.server(cn="rotated")
            cert.write_bytes(new.cert_pem)
            key.write_bytes(new.key_pem)
            os.utime(cert, ns=(2_000_000_000 * 10**9,) * 2)  # distinct even in one clock tick
            # A new connection gets the new certificate; one that trusts only the old CA fails.
            assert _gtins(_list(running.port, new_ca.pem, line)) == {a.gtin}
            assert certs.reloads == 1 and certs.current.subject == "CN=rotated"
            assert _code_of(_list, running.port, ca.pem, line) == Code.UNAVAILABLE
            rest = list(stream)
        serials = [c.serial for r in [first, *rest] for c in r.codes]
        assert len(serials) == 3000 and len(set(serials)) == 3000
    finally:
        running.stop(0)


def test_plaintext_off_loopback_is_refused(world: dict[str, Any]) -> None:
    container = world["container"]
    bindings = [binding_for("issuer", container)]
    with pytest.raises(InvalidArgument) as caught:
        create_server(bindings, container.authenticator, address=f"{ANY_IPV4}:0")
    assert caught.value.field == "SEALMARK_GRPC_HOST"
    running = create_server(
        bindings, container.authenticator, address=f"{ANY_IPV4}:0", allow_insecure=True
    )
    running.stop(0)


def _serve_once(world: dict[str, Any], **settings: str) -> subprocess.CompletedProcess[str]:
    return sealmark(
        "serve",
        "issuer",
        dsn=world["dsn"],
        redis_url=world["redis"],
        env_extra={"SEALMARK_GRPC_PORT": "0", "SEALMARK_METRICS_PORT": "0", **settings},
    )


def test_serve_refuses_plaintext_off_loopback(world: dict[str, Any]) -> None:
    done = _serve_once(world, SEALMARK_GRPC_HOST=ANY_IPV4)
    assert done.returncode == 2
    assert "SEALMARK_GRPC_HOST: 0.0.0.0 is not a loopback address" in done.stderr


def test_serve_refuses_a_plaintext_consumer_page_off_loopback(world: dict[str, Any]) -> None:
    env = {"SEALMARK_GRPC_PORT": "0", "SEALMARK_METRICS_PORT": "0"}
    done = sealmark(
        "serve",
        "verifier",
        dsn=world["dsn"],
        redis_url=world["redis"],
        env_extra={**env, "SEALMARK_VERIFY_HTTP_HOST": ANY_IPV4, "SEALMARK_VERIFY_HTTP_PORT": "0"},
    )
    assert done.returncode == 2
    assert "SEALMARK_VERIFY_HTTP_HOST: 0.0.0.0 is not a loopback address" in done.stderr
    assert "plaintext HTTP (the consumer page)" in done.stderr


def test_serve_refuses_plaintext_metrics_off_loopback(world: dict[str, Any]) -> None:
    done = _serve_once(world, SEALMARK_HTTP_HOST=ANY_IPV4)
    assert done.returncode == 2
    assert "SEALMARK_HTTP_HOST: 0.0.0.0 is not a loopback address" in done.stderr
    assert "plaintext HTTP (the metrics port)" in done.stderr


def test_metrics_speak_https_with_the_server_certificate(world: dict[str, Any]) -> None:
    files = world["files"]
    settings = load_settings(
        {
            "SEALMARK_TLS_CERT_FILE": str(files.cert),
            "SEALMARK_TLS_KEY_FILE": str(files.key),
            "SEALMARK_METRICS_PORT": "0",
        }
    )
    server, _ = start_metrics(settings, tls=True)
    try:
        port = server.server_port
        context = ssl.create_default_context(cadata=world["ca"].pem.decode())
        conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
        conn.request("GET", "/metrics")
        reply = conn.getresponse()
        assert reply.status == 200 and b"sealmark_" in reply.read()
        conn.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            try:
                answer = plain.recv(4096)
            except ConnectionResetError:
                answer = b""
        assert b"sealmark_" not in answer and not answer.startswith(b"HTTP/1.1 200")
    finally:
        server.shutdown()
        server.server_close()


def test_serve_names_a_missing_pem(world: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    done = _serve_once(
        world, SEALMARK_TLS_CERT_FILE=str(missing), SEALMARK_TLS_KEY_FILE=str(world["files"].key)
    )
    assert done.returncode == 2
    assert f"SEALMARK_TLS_CERT_FILE: cannot read {missing}" in done.stderr


def test_serve_refuses_a_key_of_another_certificate(world: dict[str, Any], tmp_path: Path) -> None:
    _, other_key = world["ca"].server().write(tmp_path, "other")
    done = _serve_once(
        world, SEALMARK_TLS_CERT_FILE=str(world["files"].cert), SEALMARK_TLS_KEY_FILE=str(other_key)
    )
    assert done.returncode == 2
    assert f"SEALMARK_TLS_KEY_FILE: the key in {other_key} does not match" in done.stderr
    assert "PRIVATE KEY" not in done.stderr + done.stdout


def test_serve_and_cli_over_mutual_tls(world: dict[str, Any], tmp_path: Path) -> None:
    """`sealmark serve` with mTLS on loopback; `sealmark certs add` maps a line certificate;
    `sealmark issue --ca --cert --key` issues with it alone (no token); plaintext is refused."""
    ca, a, files = world["ca"], world["a"], world["files"]
    client_cert, client_key = ca.client(f"line-{os.urandom(3).hex()}").write(tmp_path, "line")
    db = {"dsn": world["dsn"], "redis_url": world["redis"]}
    added = sealmark(
        "--json", "certs", "add", "--tenant", a.tenant_id, "--role", "line", "--name", "line 9",
        "--from-cert", str(client_cert), **db,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = sealmark("--json", "certs", "list", "--tenant", a.tenant_id, **db)
    assert '"kind": "subject"' in listed.stdout and "line 9" in listed.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMARK_")}
    env.update(
        SEALMARK_DATABASE_URL=world["dsn"],
        SEALMARK_REDIS_URL=world["redis"],
        SEALMARK_SECRET_PEPPER="e2e-test-pepper-0123456789",
        SEALMARK_KEY_PASSPHRASE="e2e-test-passphrase",
        SEALMARK_GRPC_PORT="0",
        SEALMARK_METRICS_PORT="0",
        SEALMARK_TLS_CERT_FILE=str(files.cert),
        SEALMARK_TLS_KEY_FILE=str(files.key),
        SEALMARK_TLS_CLIENT_CA_FILE=str(files.client_ca),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "sealmark_app.cli.main", "serve", "issuer"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reader: threading.Thread | None = None
    try:
        assert server.stdout is not None
        seen = []
        target = ""
        for line in server.stdout:
            seen.append(line)
            if "Sealmark is up: gRPC " in line:
                target = line.split("gRPC ", 1)[1].split(" ", 1)[0]
            if "gRPC speaks mutual TLS" in line:
                break
        assert target, "".join(seen)
        tls = ["--ca", str(files.client_ca), "--cert", str(client_cert), "--key", str(client_key)]
        out = tmp_path / "codes.jsonl"
        issue = [
            "issue", "--target", target, "--gtin", a.gtin, "--lot", "L1", "--expiry", "301231",
            "--count", "3", "--out", str(out),
        ]  # fmt: skip
        # The brand needs a signing key first: an admin token over the same mTLS connection.
        with _channel(int(target.rsplit(":", 1)[1]), ca.pem, ca.client("ops")) as channel:
            issuer_pb2_grpc.IssuerStub(channel).RotateKey(
                issuer_pb2.RotateKeyRequest(), metadata=_md(a.tokens["admin"]), timeout=30
            )
        done = sealmark(*issue, *tls, **db)
        assert done.returncode == 0, done.stderr
        assert len(out.read_text().splitlines()) == 3
        commission = sealmark(
            "codes", "commission", "--target", target, "--file", str(out), *tls, **db
        )
        assert commission.returncode == 0, commission.stderr
        plaintext = sealmark(*issue, "--token", a.tokens["line"], **db)
        assert plaintext.returncode == 1 and "UNAVAILABLE" in plaintext.stderr
        no_key = sealmark(*issue, "--ca", str(files.client_ca), "--cert", str(client_cert), **db)
        assert no_key.returncode == 2 and "--key: give --cert and --key together" in no_key.stderr
        # Revoked with the CLI: refused once the server's 5-second cache has let it go.
        cert_id = json.loads(added.stdout)["id"]
        revoked = sealmark("certs", "revoke", "--tenant", a.tenant_id, cert_id, **db)
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + 15
        while True:
            again = sealmark(*issue, *tls, **db)
            if again.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert again.returncode == 1 and "UNAUTHENTICATED" in again.stderr, again.stderr
        # SIGHUP re-reads the certificate files of the running server.
        lines: queue.Queue[str] = queue.Queue()
        out_stream = server.stdout
        reader = threading.Thread(target=lambda: [lines.put(x) for x in out_stream], daemon=True)
        reader.start()
        server.send_signal(signal.SIGHUP)
        reloaded = ""
        while "tls.reloaded" not in reloaded:
            reloaded = lines.get(timeout=15)
        assert "signal" in reloaded and "CN=localhost" in reloaded
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
        if reader is not None:
            reader.join(timeout=10)  # to the pipe's end, before the pipe is closed under it
        if server.stdout is not None:
            server.stdout.close()
