"""``sealmark health``: ask a server's ``grpc.health.v1.Health/Check``, for container health
checks and probes. Needs no settings, token or database: only the address, and the CA that
signed the server's certificate when the port speaks TLS.

Also runnable as ``python -m sealmark_app.cli.health`` (what the Dockerfile's HEALTHCHECK and the
Kubernetes exec probes run): that loads this module and grpc alone, not the whole CLI, which
matters for a command run every few seconds.

Exit codes: 0 SERVING, 1 answered but not SERVING (NOT_SERVING, draining, or a service name
the server does not know), 2 no answer (unreachable, TLS handshake refused, timeout, usage).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING, NOT_SERVING, NO_ANSWER = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_arguments(sub.add_parser("health", help="check a server's gRPC health and exit"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", default="127.0.0.1:50051", help="host:port (default 127.0.0.1:50051)"
    )
    parser.add_argument(
        "--service",
        default="",
        help="service to ask about, e.g. sealmark.v1.Issuer (default '': the whole server)",
    )
    parser.add_argument("--ca", type=Path, help="PEM CA bundle: speak TLS and verify the server")
    parser.add_argument("--cert", type=Path, help="PEM client certificate (mTLS; with --key)")
    parser.add_argument("--key", type=Path, help="PEM client private key (mTLS; with --cert)")
    parser.add_argument(
        "--server-name",
        help="name the server's certificate must carry, when it differs from the target's"
        " host (a probe dialling 127.0.0.1 of a server whose certificate says 'issuer')",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")


def run(args: argparse.Namespace) -> int:
    """Check once; print one line; return the exit code (see the module docstring)."""
    try:
        channel = _channel(args)
    except (OSError, ValueError) as exc:
        print(f"health: {exc}", file=sys.stderr)
        return NO_ANSWER
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.NOT_FOUND:
                print(f"health: {args.target}: unknown service {args.service!r}")
                return NOT_SERVING
            print(f"health: {args.target}: {code.name}: {exc.details()}", file=sys.stderr)
            return NO_ANSWER
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"health: {args.target} {args.service or '(server)'}: {status}")
    return SERVING if answer.status == health_pb2.HealthCheckResponse.SERVING else NOT_SERVING


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if args.ca is None:
        if args.cert or args.key or args.server_name:
            raise ValueError("--cert, --key and --server-name need --ca (TLS)")
        return grpc.insecure_channel(args.target)
    if (args.cert is None) != (args.key is None):
        raise ValueError("--cert and --key go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(args.ca, "--ca"),
        private_key=_read(args.key, "--key") if args.key else None,
        certificate_chain=_read(args.cert, "--cert") if args.cert else None,
    )
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(args.target, credentials, options=options)


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OSError(f"{flag} {path}: {exc.strerror or exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sealmark_app.cli.health", description="check a server's gRPC health"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
