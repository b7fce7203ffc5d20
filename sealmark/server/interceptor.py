"""One server interceptor that admits, scopes, measures and maps errors for every RPC.

For each call it (1) checks the access policy of the method: public, or a credential with one
of the allowed roles: a bearer token, a registered client certificate (mutual TLS), or both,
combined by :func:`sealmark.tenancy.certs.combine`; (2) makes the caller's Principal available
to the handler through :func:`current_principal`; (3) maps raised exceptions to status codes via
:func:`sealmark.server.errors.status_for`; (4) records metrics. Authentication runs in the
handler's worker thread, inside the wrapped behaviour, so the context variable is visible to it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from prometheus_client import Counter, Histogram

from sealmark.errors import InvalidArgument, PermissionDenied, Unauthenticated
from sealmark.server.errors import status_for
from sealmark.server.metrics import RPC_IN_FLIGHT, RPC_SECONDS, RPC_TOTAL
from sealmark.server.tls import peer_identity
from sealmark.tenancy.certs import NO_CERT, CertIdentity, CertOutcome, combine
from sealmark.tenancy.model import Principal, Role

PUBLIC: frozenset[Role] = frozenset()
"""Access value for methods anyone may call (no token)."""

Policy = Mapping[str, frozenset[Role]]
Authenticate = Callable[[str], Principal]
AuthenticateCert = Callable[[CertIdentity], CertOutcome]
Admit = Callable[[grpc.ServicerContext], Principal | None]

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "sealmark_principal", default=None
)

# Infrastructure services that are always public (grpcurl, load balancers).
_INFRA_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def current_principal() -> Principal:
    """The authenticated caller of the RPC being handled. Raises Unauthenticated if none."""
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("this call needs a bearer token")
    return principal


class ServiceInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Admission, error mapping and metrics. ``policy`` maps full method names to allowed roles
    (``PUBLIC`` for none); a method missing from the policy is admin-only (deny by default).
    With ``authenticate_cert`` (mutual TLS), a call's client certificate counts as well."""

    def __init__(
        self,
        authenticate: Authenticate,
        policy: Policy,
        authenticate_cert: AuthenticateCert | None = None,
    ) -> None:
        self._authenticate = authenticate
        self._authenticate_cert = authenticate_cert
        self._policy = policy
        # method -> (the service's handler, its wrapped form): wrapped once, not per call
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        method: str = details.method
        infra = method.startswith(_INFRA_PREFIXES)
        if handler is None or (infra and not handler.request_streaming):
            return handler
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = _decoding_only(handler) if infra else self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        admit = self._admitter(self._policy.get(method, frozenset({Role.ADMIN})))
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, method, admit),
                _lenient(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _unary(handler.stream_unary, method, admit, streamed=True),
                _lenient(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream, method, admit),
                _lenient(handler.request_deserializer),
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            _streaming(handler.stream_stream, method, admit, streamed=True),
            _lenient(handler.request_deserializer),
            handler.response_serializer,
        )

    def _admitter(self, allowed: frozenset[Role]) -> Admit:
        def admit(context: grpc.ServicerContext) -> Principal | None:
            if allowed == PUBLIC:
                return None
            bearer = _bearer(context.invocation_metadata())
            cert = self._certificate(context)
            token = None if bearer is None or cert.refused else self._authenticate(bearer)
            principal = combine(token, cert)
            if Role.ADMIN not in principal.roles and not principal.roles & allowed:
                wanted = ", ".join(sorted(r.value for r in allowed))
                raise PermissionDenied(f"this call needs one of the roles: {wanted}")
            return principal

        return admit

    def _certificate(self, context: grpc.ServicerContext) -> CertOutcome:
        if self._authenticate_cert is None:
            return NO_CERT
        identity = peer_identity(context.auth_context())
        return NO_CERT if identity is None else self._authenticate_cert(identity)


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
    return None


def _fail(context: grpc.ServicerContext, exc: Exception, method: str) -> str:
    """Abort the call with the mapped status; returns the code name for metrics if abort
    returns (it raises in a real server)."""
    status, message = status_for(exc, method)
    context.abort(status, message)
    return str(status.name)


@contextlib.contextmanager
def _rpc_scope(method: str, admit: Admit, context: grpc.ServicerContext) -> Iterator[None]:
    """Everything around one call: admission, the principal, error mapping, metrics."""
    started, code = time.perf_counter(), "OK"
    RPC_IN_FLIGHT.inc()
    token = None
    try:
        token = _principal.set(admit(context))
        yield
    except GeneratorExit:  # the client went away mid-stream
        code = "CANCELLED"
        raise
    except Exception as exc:
        if context.code() is not None:  # the handler aborted by itself
            code = context.code().name
            raise
        code = _fail(context, exc, method)
    finally:
        if token is not None:
            _principal.reset(token)
        _observe(method, code, started)


def _unary(
    behavior: Callable[[Any, grpc.ServicerContext], Any],
    method: str,
    admit: Admit,
    *,
    streamed: bool = False,
) -> Callable[[Any, grpc.ServicerContext], Any]:
    def run(request: Any, context: grpc.ServicerContext) -> Any:
        with _rpc_scope(method, admit, context):
            return behavior(_decoded(request, streamed), context)

    return run


def _streaming(
    behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
    method: str,
    admit: Admit,
    *,
    streamed: bool = False,
) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
    def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        with _rpc_scope(method, admit, context):
            yield from behavior(_decoded(request, streamed), context)

    return run


class _Undecodable:
    """Stands in for a request message that does not parse (bad UTF-8 in a string field,
    corrupt wire format), so that the handler raises InvalidArgument naming the message.

    grpcio answers such a message itself with INTERNAL, and in a request stream it ends the
    stream as if the client had closed it; a handler that then returns normally makes grpcio
    send a second status, which loses the call for good and keeps the server from ever
    finishing its shutdown (issue 28). Our deserializer therefore never fails."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None
    message_type = getattr(deserialize, "__self__", None)
    name = getattr(getattr(message_type, "DESCRIPTOR", None), "name", "request")

    def run(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            reason = str(exc).rpartition(": ")[2] or "wire format was corrupt"
            return _Undecodable(InvalidArgument(name, f"not a valid message ({reason})"))

    return run


def _decoding_only(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A request-streaming infrastructure method (reflection): public and not measured, like
    the rest of them, but a message that does not parse is INVALID_ARGUMENT and not a lost
    call (see _Undecodable)."""
    behavior = handler.stream_unary or handler.stream_stream

    def run(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        def checked() -> Iterator[Any]:
            for request in requests:
                if isinstance(request, _Undecodable):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(request.error))
                yield request

        return behavior(checked(), context)

    kind = (
        grpc.stream_unary_rpc_method_handler
        if handler.stream_unary
        else grpc.stream_stream_rpc_method_handler
    )
    return kind(run, _lenient(handler.request_deserializer), handler.response_serializer)


def _decoded(request: Any, streamed: bool) -> Any:
    """The request, or for a request stream an iterator over it, raising the InvalidArgument
    of the first message that did not parse."""
    if streamed:
        return _checked(request)
    if isinstance(request, _Undecodable):
        raise request.error
    return request


def _checked(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, _Undecodable):
            raise request.error
        yield request


def _observe(method: str, code: str, started: float) -> None:
    RPC_IN_FLIGHT.dec()
    total, seconds = _series(method, code)
    total.inc()
    seconds.observe(time.perf_counter() - started)


@functools.cache  # registered methods times status codes: a bounded set
def _series(method: str, code: str) -> tuple[Counter, Histogram]:
    """The labelled children of one method and code, looked up once (``labels`` takes a lock
    and checks its arguments on every call)."""
    return RPC_TOTAL.labels(method, code), RPC_SECONDS.labels(method)
