"""Build, run and stop the gRPC server that hosts one or more Sealmark services."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import grpc
import structlog
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sealmark.server import edge
from sealmark.server.interceptor import Authenticate, AuthenticateCert, ServiceInterceptor
from sealmark.server.tls import ServerCertificates, check_plaintext_binding
from sealmark.tenancy.model import Role

log = structlog.get_logger("sealmark.server")

STOP_MARGIN_S = 1.0
"""How long :meth:`RunningServer.stop` waits past the grace period for cancelled calls to end."""


@dataclass(frozen=True)
class ServiceBinding:
    """How one service joins a server: its full proto name, how to add its servicer, and
    which roles may call each of its methods (full method name → roles; empty = public)."""

    name: str
    full_name: str
    register: Callable[[grpc.Server], None]
    policy: Mapping[str, frozenset[Role]] = field(default_factory=dict)


def add_servicer(
    server: grpc.Server,
    service: ServiceDescriptor,
    servicer: object,
    *,
    encoded: Collection[str] = (),
) -> None:
    """Register ``servicer`` for ``service`` as the generated ``add_*_to_server`` does, except
    that every request goes through :mod:`sealmark.server.edge` (decoded without raising, then
    checked once, so the servicer only sees requests that pass), and that the methods named in
    ``encoded`` hand back their responses already serialized (bytes in the response's wire
    format), which go out as they are."""
    unknown = set(encoded) - {m.name for m in service.methods}
    if unknown:
        raise ValueError(f"{service.full_name} has no method {sorted(unknown)}")
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request = GetMessageClass(method.input_type)
        response = GetMessageClass(method.output_type)
        serialize: Callable[[Any], bytes] = (
            bytes if method.name in encoded else response.SerializeToString
        )
        kind = _HANDLER_KINDS[method.client_streaming, method.server_streaming]
        full_name = f"/{service.full_name}/{method.name}"
        handlers[method.name] = kind(
            edge.guarded(getattr(servicer, method.name), full_name, method.client_streaming),
            request_deserializer=edge.deserializer(request),
            response_serializer=serialize,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


_HANDLER_KINDS: dict[tuple[bool, bool], Any] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    services: Sequence[ServiceBinding]

    def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self.health.set("", status)
        for binding in self.services:
            self.health.set(binding.full_name, status)

    def stop(self, grace_s: float) -> bool:
        """Stop taking calls, let running calls and streams finish for ``grace_s``, then cancel
        what is left. Returns within ``grace_s`` + :data:`STOP_MARGIN_S`: True when every call
        has ended, False when some never did.

        Waiting without a bound can hang for good: grpcio (1.85) loses a call whose request
        stream carries a message that does not parse when the handler then ends normally (it
        sends a second status, which the core refuses, and waits for it forever), and a lost
        call keeps ``server.stop()``'s event unset however long the grace."""
        self.health.enter_graceful_shutdown()
        if self.server.stop(grace_s).wait(grace_s + STOP_MARGIN_S):
            return True
        log.warning("grpc.calls_left_open", after_s=grace_s + STOP_MARGIN_S)
        return False


def create_server(
    bindings: Iterable[ServiceBinding],
    authenticate: Authenticate,
    *,
    address: str = "127.0.0.1:0",
    workers: int = 16,
    reuse_port: bool = False,
    tls: ServerCertificates | None = None,
    authenticate_cert: AuthenticateCert | None = None,
    allow_insecure: bool = False,
) -> RunningServer:
    """Create and start a server for ``bindings`` on ``address`` (port 0 = any free port).
    With ``reuse_port`` other processes may bind the same port and the kernel spreads new
    connections over them (``sealmark serve`` with ``processes`` > 1); without it, binding a
    port that another process holds fails.

    With ``tls`` the port speaks TLS only (mutual TLS when it has a client CA, and then
    ``authenticate_cert`` maps client certificates to principals). Without it, a
    non-loopback address is refused (InvalidArgument) unless ``allow_insecure``.

    Health (one status per service, plus "" for the whole server) and reflection are on.
    """
    host = address.rsplit(":", 1)[0]
    if tls is None:
        check_plaintext_binding(host, allow_insecure=allow_insecure)
    services = list(bindings)
    policy: dict[str, frozenset[Role]] = {}
    for binding in services:
        policy.update(binding.policy)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
        interceptors=[ServiceInterceptor(authenticate, policy, authenticate_cert)],
        options=[
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.so_reuseport", int(reuse_port)),
        ],
    )
    for binding in services:
        binding.register(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [b.full_name for b in services]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, tls.credentials())
    if port == 0:
        raise OSError(f"cannot bind gRPC address {address}")
    server.start()
    running = RunningServer(server, port, health_servicer, services)
    running.set_serving(True)
    log.info(
        "grpc.started",
        address=host,
        port=port,
        services=names,
        transport="plaintext" if tls is None else "mtls" if tls.mutual else "tls",
    )
    return running


class ShutdownSignal:
    """Catches SIGINT and SIGTERM from construction on (so a signal during start-up is not
    lost), until ``restore()``. Main thread only."""

    def __init__(self) -> None:
        self._received = threading.Event()
        self.signum = 0
        self._previous = {
            s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
        }

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum
        self._received.set()

    def trigger(self) -> None:
        """Shut down as on a signal (number 0): a serving process whose parent went away."""
        self._received.set()

    def wait(self) -> int:
        """Block until a signal arrives; return its number."""
        while not self._received.wait(0.5):
            pass
        return self.signum

    def restore(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
