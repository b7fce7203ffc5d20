"""A bare unary echo server: the ``grpc_echo_rps`` baseline's server, run as a subprocess.

Same gRPC flavour as the services (sync server, thread pool). Prints its port on stdout, then
serves until its standard input closes or it gets SIGTERM. With a CPU number as its argument
it runs on that CPU only, as a pinned serving process does (SEALMARK_CPU_AFFINITY). With
``--cert``/``--key`` it speaks TLS through the services' own credentials
(:class:`sealmark.server.tls.ServerCertificates`, reload fetcher included), mutual TLS with
``--client-ca`` as well (``grpc_echo_tls_rps``, ``grpc_echo_mtls_rps``).
"""

from __future__ import annotations

import argparse
import sys
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from sealmark.server import affinity
from sealmark.server.tls import ServerCertificates, TlsFiles

METHOD = "/sealmark_app.bench.Echo/Echo"


def _identity(data: bytes) -> bytes:
    return data


def _echo(request: bytes, _context: Any) -> bytes:
    return request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cpu", nargs="?", type=int, default=None)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--client-ca", type=Path)
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.method_handlers_generic_handler(
        "sealmark_app.bench.Echo",
        {"Echo": grpc.unary_unary_rpc_method_handler(_echo, _identity, _identity)},
    )
    server.add_generic_rpc_handlers((handler,))
    if args.cert is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        certs = ServerCertificates(TlsFiles(args.cert, args.key, args.client_ca))
        port = server.add_secure_port("127.0.0.1:0", certs.credentials())
    server.start()
    if args.cpu is not None:
        affinity.pin_process(args.cpu)
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
