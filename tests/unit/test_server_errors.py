"""The one mapping from Sealmark errors to gRPC status codes."""

from __future__ import annotations

import grpc
import pytest
import structlog

from sealmark import errors
from sealmark.server.errors import status_for


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            errors.InvalidArgument("PackRequest.parent", "required"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (errors.NotFound("no such code"), grpc.StatusCode.NOT_FOUND),
        (errors.Aborted("conflict"), grpc.StatusCode.ABORTED),
        (errors.Unavailable("database unavailable"), grpc.StatusCode.UNAVAILABLE),
        (errors.Unimplemented("later"), grpc.StatusCode.UNIMPLEMENTED),
    ],
)
def test_named_errors_keep_their_message(
    error: errors.SealmarkError, code: grpc.StatusCode
) -> None:
    assert status_for(error, "/m") == (code, str(error))


def test_a_storage_fault_is_internal_and_shows_only_its_sqlstate() -> None:
    fault = errors.StorageFault("0A000", 'cannot lock rows of "codes" across shards: pin 123456')
    with structlog.testing.capture_logs() as logged:
        code, message = status_for(fault, "/sealmark.v1.Issuer/IssueCodes")
    assert code is grpc.StatusCode.INTERNAL
    assert message.startswith("storage fault (SQLSTATE 0A000) (incident ")
    assert "shards" not in message and "123456" not in message
    (entry,) = [e for e in logged if e["event"] == "rpc.storage_fault"]
    assert entry["sqlstate"] == "0A000" and "shards" in entry["detail"]
    assert entry["incident"] in message


def test_an_unknown_exception_is_internal_with_an_incident_only() -> None:
    with structlog.testing.capture_logs() as logged:
        code, message = status_for(RuntimeError("secret detail"), "/m")
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in message and message.startswith("internal error (incident ")
    assert [e["event"] for e in logged] == ["rpc.internal_error"]
