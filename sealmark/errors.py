"""The error tree every Sealmark service raises.

Errors are named by what the caller should do, not by what broke::

    SealmarkError
     ├── InvalidArgument      fix the request (names the field)
     ├── Unauthenticated      present a valid credential
     ├── PermissionDenied     this credential may not do this
     ├── NotFound             the thing does not exist (or is not yours to see)
     ├── AlreadyExists        it exists already
     ├── FailedPrecondition   the system is not in a state that allows this
     ├── ResourceExhausted    slow down, or a configured bound was reached
     ├── Aborted              a conflict; retry the whole operation
     ├── Unavailable          a dependency is down; retry later
     ├── Unimplemented        this part of the contract is not built yet
     └── StorageFault         the database refused a statement for a reason no caller can
                              act on (a bug, or a feature the backend lacks): INTERNAL

Library exceptions (psycopg2, redis, cryptography) are translated into this tree at exactly
one boundary per adapter (``raise X(...) from exc``); gRPC status codes are assigned in exactly
one place, :mod:`sealmark.server.errors`.
"""

from __future__ import annotations


class SealmarkError(Exception):
    """Base of every error Sealmark raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(SealmarkError):
    """The request is malformed. ``field`` names the offending field, e.g. ``IssueRequest.gtin``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class Unauthenticated(SealmarkError):
    """No credential, or one that is unknown, malformed or revoked."""


class PermissionDenied(SealmarkError):
    """The credential is valid but not allowed this action or this tenant's data."""


class NotFound(SealmarkError):
    """The named thing does not exist for this caller."""


class AlreadyExists(SealmarkError):
    """The thing being created exists already."""


class FailedPrecondition(SealmarkError):
    """The current state does not allow the operation (e.g. an illegal state transition)."""


class ResourceExhausted(SealmarkError):
    """A rate limit or a configured bound was reached."""


class Aborted(SealmarkError):
    """A concurrency conflict (serialization failure, deadlock); retry the whole operation."""

    retryable = True


class Unavailable(SealmarkError):
    """A dependency (PostgreSQL, Redis, an HSM) cannot be reached; retry later."""

    retryable = True


class Unimplemented(SealmarkError):
    """The contract names this operation but this build does not provide it."""


class StorageFault(SealmarkError):
    """The database refused a statement for a reason outside the adapters' table: a bug, or a
    feature this backend does not have (a Citus coordinator refusing a multi-shard lock). The
    message is safe to show (the SQLSTATE only); ``detail`` is the server's text, for the log."""

    def __init__(self, sqlstate: str, detail: str) -> None:
        super().__init__(f"storage fault (SQLSTATE {sqlstate or 'none'})")
        self.sqlstate = sqlstate
        self.detail = detail
