"""The one place where Sealmark errors become gRPC status codes.

Unknown exceptions become INTERNAL with a generic message; the traceback is logged with a
correlation id, never sent to the caller.
"""

from __future__ import annotations

import uuid

import grpc
import structlog

from sealmark import errors

_CODES: dict[type[errors.SealmarkError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}

log = structlog.get_logger("sealmark.rpc")


def status_for(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status code and the caller-safe message for an exception raised by a handler."""
    for cls in type(exc).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code, str(exc)
    incident = uuid.uuid4().hex[:12]
    if isinstance(exc, errors.StorageFault):
        log.error(
            "rpc.storage_fault",
            method=method,
            incident=incident,
            sqlstate=exc.sqlstate,
            detail=exc.detail,
        )
        return grpc.StatusCode.INTERNAL, f"{exc} (incident {incident})"
    log.error("rpc.internal_error", method=method, incident=incident, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (incident {incident})"
