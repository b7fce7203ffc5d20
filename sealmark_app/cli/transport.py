"""How the CLI's gRPC client commands reach their server: plaintext (the local default), TLS
(``--ca`` or ``--tls``) or mutual TLS (``--cert`` and ``--key`` as well)."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc

from sealmark.errors import InvalidArgument


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """``--ca``, ``--tls``, ``--cert`` and ``--key`` on a client command."""
    group = parser.add_argument_group("TLS (default: plaintext, for a server on this machine)")
    group.add_argument(
        "--ca", type=Path, default=None, metavar="PEM", help="speak TLS, trusting these CAs"
    )
    group.add_argument(
        "--tls", action="store_true", help="speak TLS, trusting the system's CAs (without --ca)"
    )
    group.add_argument(
        "--cert", type=Path, default=None, metavar="PEM", help="client certificate (mutual TLS)"
    )
    group.add_argument(
        "--key", type=Path, default=None, metavar="PEM", help="private key of --cert"
    )


def channel_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """The TLS credentials the options ask for, or None for plaintext. Raises InvalidArgument
    naming the option (and the path) of a file it cannot read, or a --cert without --key."""
    ca, cert, key = (getattr(args, name, None) for name in ("ca", "cert", "key"))
    if (cert is None) != (key is None):
        missing = "--key" if key is None else "--cert"
        raise InvalidArgument(missing, "give --cert and --key together (mutual TLS)")
    if ca is None and cert is None and not getattr(args, "tls", False):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read("--ca", ca),
        private_key=_read("--key", key),
        certificate_chain=_read("--cert", cert),
    )


def open_channel(target: str, args: argparse.Namespace) -> grpc.Channel:
    """A channel to ``target`` as the options say (see :func:`channel_credentials`)."""
    credentials = channel_credentials(args)
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials)


def _read(option: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(option, f"cannot read {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise InvalidArgument(option, f"{path} is not a PEM file")
    return data
