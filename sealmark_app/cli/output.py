"""How the CLI prints: a readable table or block for people, ``--json`` for scripts; and how
its gRPC client commands find their server, present their token and report a failed call."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import grpc

from sealmark.errors import InvalidArgument

if TYPE_CHECKING:
    from sealmark.settings import Settings


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name != "secret_hash"
        }
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (frozenset, set)):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def emit(value: Any, as_json: bool) -> None:
    data = to_jsonable(value)
    if as_json:
        print(json.dumps(data, ensure_ascii=False, sort_keys=True))
        return
    if isinstance(data, list):
        for row in data:
            _block(row)
            print()
    else:
        _block(data)


def _block(data: Any) -> None:
    if not isinstance(data, dict):
        print(data)
        return
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        print(f"{key:<{width}}  {'' if shown is None else shown}")


def fail(message: str, code: int = 2) -> int:
    print(f"sealmark: error: {message}", file=sys.stderr)
    return code


def rows(values: Sequence[Any]) -> list[Any]:
    return list(values)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where a client command sends its calls and the metadata every call carries."""

    target: str
    metadata: tuple[tuple[str, str], ...]


def endpoint(args: argparse.Namespace, settings: Settings) -> Endpoint:
    """``--target`` (default ``grpc_host:grpc_port`` from the settings) and ``--token`` (default
    ``SEALMARK_TOKEN``) as a bearer token. Raises InvalidArgument naming ``--token`` when there
    is none, unless a client certificate (``--cert``, mutual TLS) is the credential."""
    token = args.token or (settings.token.get_secret_value() if settings.token else None)
    target = args.target or f"{settings.grpc_host}:{settings.grpc_port}"
    if not token:
        if getattr(args, "cert", None) is not None:
            return Endpoint(target, ())
        raise InvalidArgument(
            "--token", "a token is required (or set SEALMARK_TOKEN, or present --cert)"
        )
    return Endpoint(target, (("authorization", f"Bearer {token}"),))


def rpc_failed(exc: grpc.RpcError) -> int:
    """Print a failed call as ``sealmark: STATUS: details`` and return the exit code: 2 when the
    server found the request malformed (as for a local InvalidArgument), 1 otherwise."""
    print(f"sealmark: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
