"""The pure parts of gRPC TLS: loading and checking PEM files, reloading them, the loopback
rule, the peer identity, the TLS settings and the CLI's client options. Real certificates,
made by ``cryptography`` here; no network."""

from __future__ import annotations

import argparse
import itertools
import os
import signal
from pathlib import Path

import pytest
import structlog.testing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealmark.errors import InvalidArgument
from sealmark.server.tls import (
    ServerCertificates,
    TlsFiles,
    check_plaintext_binding,
    is_loopback,
    load_pem_set,
    peer_identity,
    reload_on_sighup,
)
from sealmark.settings import load_settings
from sealmark.tenancy.certs import CertIdentity
from sealmark_app.cli.transport import channel_credentials
from tests.support.certs import Issued, TestCA

ANY_IPV4 = "0.0.0.0"  # noqa: S104 (what the refusal is about)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def files(ca: TestCA, tmp_path: Path) -> TlsFiles:
    cert, key = ca.server().write(tmp_path, "server")
    return TlsFiles(cert, key, ca.write(tmp_path))


def test_a_good_set_loads(files: TlsFiles) -> None:
    pems = load_pem_set(files)
    assert pems.subject == "CN=localhost"
    assert pems.client_ca is not None and b"BEGIN CERTIFICATE" in pems.client_ca
    assert "BEGIN" not in repr(pems)  # no key (nor certificate) in logs of the object


def test_a_missing_file_names_the_setting_and_the_path(files: TlsFiles, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(InvalidArgument) as caught:
        load_pem_set(TlsFiles(missing, files.key))
    assert caught.value.field == "SEALMARK_TLS_CERT_FILE"
    assert str(missing) in str(caught.value) and "No such file" in str(caught.value)
    with pytest.raises(InvalidArgument) as caught:
        load_pem_set(TlsFiles(files.cert, files.key, missing))
    assert caught.value.field == "SEALMARK_TLS_CLIENT_CA_FILE" and str(missing) in str(caught.value)


def test_an_unreadable_key_names_the_setting_and_the_path(files: TlsFiles, tmp_path: Path) -> None:
    # A directory: unreadable even for root, who reads files of any mode.
    with pytest.raises(InvalidArgument) as caught:
        load_pem_set(TlsFiles(files.cert, tmp_path))
    assert caught.value.field == "SEALMARK_TLS_KEY_FILE" and str(tmp_path) in str(caught.value)


def test_a_file_that_is_not_pem_is_refused(files: TlsFiles, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(InvalidArgument, match=r"junk.pem holds no PEM certificate") as caught:
        load_pem_set(TlsFiles(junk, files.key))
    assert caught.value.field == "SEALMARK_TLS_CERT_FILE"
    with pytest.raises(InvalidArgument, match="holds no PEM certificate") as caught:
        load_pem_set(TlsFiles(files.cert, files.key, junk))
    assert caught.value.field == "SEALMARK_TLS_CLIENT_CA_FILE"


def test_a_broken_key_is_refused_without_quoting_it(files: TlsFiles, tmp_path: Path) -> None:
    secret = "U0VDUkVULUtFWS1NQVRFUklBTC0xMjM0NTY3ODkw"
    bad = tmp_path / "bad.key"
    bad.write_text(f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n")
    with pytest.raises(InvalidArgument) as caught:
        load_pem_set(TlsFiles(files.cert, bad))
    assert caught.value.field == "SEALMARK_TLS_KEY_FILE"
    assert "bad.key holds no unencrypted PEM private key" in str(caught.value)
    assert secret not in str(caught.value) and caught.value.__cause__ is None


def test_an_encrypted_key_is_refused(files: TlsFiles, tmp_path: Path) -> None:
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(InvalidArgument, match="no unencrypted PEM private key"):
        load_pem_set(TlsFiles(files.cert, locked))


def test_a_key_that_does_not_match_its_certificate_is_refused(
    ca: TestCA, files: TlsFiles, tmp_path: Path
) -> None:
    _, other_key = ca.server().write(tmp_path, "other")
    with pytest.raises(InvalidArgument) as caught:
        load_pem_set(TlsFiles(files.cert, other_key))
    assert caught.value.field == "SEALMARK_TLS_KEY_FILE"
    assert f"the key in {other_key} does not match the certificate in {files.cert}" in str(
        caught.value
    )
    assert "BEGIN" not in str(caught.value)


def test_unchanged_files_are_not_reloaded(files: TlsFiles) -> None:
    certs = ServerCertificates(files)
    assert certs.fetch() is None and certs.fetch() is None
    assert certs.reloads == 0


def test_changed_files_are_reloaded_at_the_next_handshake(
    ca: TestCA, files: TlsFiles, tmp_path: Path
) -> None:
    certs = ServerCertificates(files)
    _replace(ca.server(cn="rotated.example"), files)
    assert certs.fetch() is not None
    assert certs.current.subject == "CN=rotated.example" and certs.reloads == 1
    assert certs.fetch() is None  # once


def test_a_half_written_set_is_refused_and_the_old_one_kept(
    ca: TestCA, files: TlsFiles, tmp_path: Path
) -> None:
    certs = ServerCertificates(files)
    new = ca.server(cn="new.example")
    _write(files.cert, new.cert_pem)  # the key is not there yet: they do not match
    assert certs.fetch() is None
    assert certs.current.subject == "CN=localhost" and certs.reloads == 0
    _write(files.key, new.key_pem)  # now the pair is complete
    assert certs.fetch() is not None and certs.current.subject == "CN=new.example"


def test_a_missing_file_during_rotation_keeps_the_old_set(files: TlsFiles) -> None:
    certs = ServerCertificates(files)
    files.key.unlink()
    assert certs.fetch() is None and certs.current.subject == "CN=localhost"


def test_sighup_reloads(ca: TestCA, files: TlsFiles) -> None:
    certs = ServerCertificates(files)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        reload_on_sighup(certs)
        new = ca.server(cn="hup.example")
        # Same size, same inode, mtime put back: only the signal can tell.
        stat = os.stat(files.cert)
        files.cert.write_bytes(new.cert_pem)
        files.key.write_bytes(new.key_pem)
        os.utime(files.cert, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.kill(os.getpid(), signal.SIGHUP)
        assert certs.reloads == 1 and certs.current.subject == "CN=hup.example"
        assert certs.fetch() is not None  # handed to gRPC at the next handshake
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        (ANY_IPV4, False),
        ("[::]", False),
        ("", False),
        ("10.1.2.3", False),
        ("plant.example", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plaintext_off_loopback_is_refused_unless_allowed() -> None:
    check_plaintext_binding("127.0.0.1", allow_insecure=False)
    with pytest.raises(InvalidArgument) as caught:
        check_plaintext_binding(ANY_IPV4, allow_insecure=False)
    assert caught.value.field == "SEALMARK_GRPC_HOST"
    assert "SEALMARK_TLS_CERT_FILE" in str(caught.value) and "SEALMARK_ALLOW_INSECURE" in str(
        caught.value
    )
    check_plaintext_binding(ANY_IPV4, allow_insecure=True)


def test_peer_identity_from_the_auth_context() -> None:
    context = {
        "transport_security_type": [b"ssl"],
        "x509_subject": [b"CN=line-3,O=Acme"],
        "peer_dns": [b"line3.plant.example"],
        "peer_uri": [b"spiffe://acme/line3"],
        "peer_ip": [b"10.0.0.7"],
    }
    assert peer_identity(context) == CertIdentity(
        "CN=line-3,O=Acme",
        ("DNS:line3.plant.example", "URI:spiffe://acme/line3", "IP:10.0.0.7"),
    )
    assert peer_identity({"transport_security_type": [b"ssl"]}) is None
    assert peer_identity({}) is None


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SEALMARK_TLS_CERT_FILE": "server.pem"}, "SEALMARK_TLS_KEY_FILE"),
        ({"SEALMARK_TLS_KEY_FILE": "server.key"}, "SEALMARK_TLS_KEY_FILE"),
        ({"SEALMARK_TLS_CLIENT_CA_FILE": "ca.pem"}, "SEALMARK_TLS_CLIENT_CA_FILE"),
        ({"SEALMARK_ALLOW_INSECURE": "maybe"}, "SEALMARK_ALLOW_INSECURE"),
    ],
)
def test_tls_settings_that_do_not_fit_name_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_settings(env)
    assert caught.value.field == key


def test_tls_settings() -> None:
    settings = load_settings(
        {
            "SEALMARK_TLS_CERT_FILE": "s.pem",
            "SEALMARK_TLS_KEY_FILE": "s.key",
            "SEALMARK_TLS_CLIENT_CA_FILE": "ca.pem",
        }
    )
    assert (settings.tls_cert_file, settings.tls_key_file) == (Path("s.pem"), Path("s.key"))
    assert settings.tls_client_ca_file == Path("ca.pem") and not settings.allow_insecure


def _client_args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**{"ca": None, "cert": None, "key": None, "tls": False, **values})


def test_cli_transport_options(ca: TestCA, tmp_path: Path) -> None:
    assert channel_credentials(_client_args()) is None  # plaintext
    assert channel_credentials(_client_args(tls=True)) is not None
    cert, key = ca.client("line-3").write(tmp_path, "client")
    assert channel_credentials(_client_args(ca=ca.write(tmp_path), cert=cert, key=key))
    with pytest.raises(InvalidArgument) as caught:
        channel_credentials(_client_args(cert=cert))
    assert caught.value.field == "--key"
    missing = tmp_path / "none.pem"
    with pytest.raises(InvalidArgument) as caught:
        channel_credentials(_client_args(ca=missing))
    assert caught.value.field == "--ca" and str(missing) in str(caught.value)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(InvalidArgument, match=r"junk\.pem is not a PEM file"):
        channel_credentials(_client_args(ca=junk))


_MTIMES = itertools.count(1_000_000_000)


def _write(path: Path, data: bytes) -> None:
    """Write and give the file a modification time of its own: two writes within one tick of
    the kernel's coarse file clock would otherwise look unchanged if the size is the same."""
    path.write_bytes(data)
    stamp = next(_MTIMES) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def _replace(issued: Issued, files: TlsFiles) -> None:
    _write(files.cert, issued.cert_pem)
    _write(files.key, issued.key_pem)


def test_reload_logs_name_files_never_their_contents(ca: TestCA, files: TlsFiles) -> None:
    certs = ServerCertificates(files)
    new = ca.server(cn="logged.example")
    with structlog.testing.capture_logs() as logs:
        _write(files.key, ca.server().key_pem)  # a key of another certificate: refused
        assert certs.fetch() is None
        _replace(new, files)
        assert certs.fetch() is not None
    assert [e["event"] for e in logs] == ["tls.reload_refused", "tls.reloaded"]
    assert str(files.key) in logs[0]["error"] and logs[1]["subject"] == "CN=logged.example"
    text = repr(logs)
    assert "BEGIN" not in text and new.key_pem.decode().splitlines()[1] not in text
