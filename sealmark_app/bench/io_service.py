"""The same-I/O baseline of ``verify_rps`` (issue 22, item 1): a unary gRPC method whose
handler does the I/O a verification needs and nothing else, one primary-key SELECT of a code
row in PostgreSQL and one EVALSHA of a small script in Redis.

It is served by ``sealmark serve`` itself, beside the services (``python -m
sealmark_app.bench.io_service issuer verifier``): the same server built by
:func:`sealmark.server.app.create_server` (the interceptor chain, the worker pool), the same
serving processes and CPU pinning (SEALMARK_PROCESSES, SEALMARK_CPU_AFFINITY), the same
container, so the same PostgreSQL pool and Redis client (a single server or a cluster). What
differs from ``Verifier.Verify`` is only what a verification does beyond its I/O: decoding and
checking the request, parsing the code, the signature, the rules, the answer, the scan log.

The method is public (no token), like ``Verify``. Request: a code key as raw bytes
(GTIN-14 + serial); reply: the code's state as bytes, empty when no such code is stored.
BENCHMARK ONLY: it is never served by ``sealmark serve``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import grpc

from sealmark.server.app import ServiceBinding
from sealmark.server.interceptor import PUBLIC
from sealmark_app.root.container import Container

SERVICE = "sealmark_app.bench.VerifyIo"
METHOD = f"/{SERVICE}/Lookup"
MAX_KEY_BYTES = 120

# The verifier's read (verifier/postgres.py: the same columns of the same row), for one key.
_SELECT = (
    "SELECT code_key, tenant_id, state, coalesce(lot, ''), expiry, production_date, key_id,"
    " pin_hash, market FROM codes WHERE code_key = $1::text"
)
# A small script on one key hash-tagged by the code key, as the verifier's scan state is: it
# writes (a counter and an expiry), as recording a scan does.
SCRIPT = (
    "local n = redis.call('HINCRBY', KEYS[1], 'n', 1) redis.call('EXPIRE', KEYS[1], 3600) return n"
)


def _identity(data: bytes) -> bytes:
    return data


class VerifyIo:
    """The handler: one read, one script call, on the container's pool and client."""

    def __init__(self, container: Container) -> None:
        self._database = container.database
        # redis-py's Script sends EVALSHA and loads the script once when the server lacks it
        # (a restart, a cluster node that never saw it).
        self._script = container.redis.register_script(SCRIPT)

    def lookup(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        if not request or len(request) > MAX_KEY_BYTES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"code key: 1..{MAX_KEY_BYTES} bytes")
        key = request.decode("ascii", "replace")
        with self._database.reads() as uow:
            rows = uow.execute_prepared("bench_io_code", _SELECT, (key,))
        self._script(keys=[f"bio:{{{key}}}"])
        return str(rows[0][2]).encode() if rows else b""


def bindings(container: Container) -> Sequence[ServiceBinding]:
    """The baseline's binding, on ``container``'s pool and Redis client."""

    def register(server: grpc.Server) -> None:
        service = VerifyIo(container)
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {"Lookup": grpc.unary_unary_rpc_method_handler(service.lookup, _identity, _identity)},
        )
        server.add_generic_rpc_handlers((handler,))

    return [ServiceBinding("verify-io", SERVICE, register, {METHOD: PUBLIC})]


COMMAND = (sys.executable, "-m", "sealmark_app.bench.io_service")


def main(argv: Sequence[str] | None = None) -> int:
    """``sealmark serve SERVICE…`` with the baseline beside the services; copies of the
    process (SEALMARK_PROCESSES) are started the same way."""
    import os

    from sealmark.logs import configure_logging
    from sealmark.settings import load_settings
    from sealmark_app.cli import serve
    from sealmark_app.cli.main import build_parser

    args: Any = build_parser().parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    settings = load_settings(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return serve.run(args, settings, extra=bindings, command=COMMAND)


if __name__ == "__main__":
    sys.exit(main())
