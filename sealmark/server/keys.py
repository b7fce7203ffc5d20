"""Public keys as the API shows them (``common.PublicKey`` / ``KeySet``), for every service
that publishes a brand's key set (the Issuer to its admins, the Verifier to anyone)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sealmark.v1 import common_pb2


class PublishedKey(Protocol):
    @property
    def key_id(self) -> str: ...
    @property
    def public_key(self) -> bytes: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def retired_at(self) -> datetime | None: ...
    @property
    def revoked_at(self) -> datetime | None: ...


def public_key_message(key: PublishedKey) -> common_pb2.PublicKey:
    message = common_pb2.PublicKey(
        key_id=key.key_id, algorithm="Ed25519", public_key=key.public_key
    )
    message.not_before.FromDatetime(key.created_at)
    if key.retired_at is not None:
        message.retired_at.FromDatetime(key.retired_at)
    if key.revoked_at is not None:
        message.revoked_at.FromDatetime(key.revoked_at)
    return message


def key_set_message(tenant_id: str, keys: Sequence[PublishedKey]) -> common_pb2.KeySet:
    return common_pb2.KeySet(tenant_id=tenant_id, keys=[public_key_message(k) for k in keys])
