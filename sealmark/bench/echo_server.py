"""A bare unary echo server: the ``grpc_echo_rps`` baseline's server, run as a subprocess.

Same gRPC flavour as the services (sync server, thread pool). Prints its port on stdout, then
serves until its standard input closes or it gets SIGTERM. With a CPU number as its argument
it runs on that CPU only, as a pinned serving process does (SEALMARK_CPU_AFFINITY).
"""

from __future__ import annotations

import sys
from concurrent import futures
from typing import Any

import grpc

from sealmark.server import affinity

METHOD = "/sealmark.bench.Echo/Echo"


def _identity(data: bytes) -> bytes:
    return data


def _echo(request: bytes, _context: Any) -> bytes:
    return request


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.method_handlers_generic_handler(
        "sealmark.bench.Echo",
        {"Echo": grpc.unary_unary_rpc_method_handler(_echo, _identity, _identity)},
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    if len(sys.argv) > 1:
        affinity.pin_process(int(sys.argv[1]))
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
