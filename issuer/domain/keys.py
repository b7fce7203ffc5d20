"""Signing-key ids: two characters of the AI 8030 key-id alphabet, numbered in rotation order
(the tenant's first key is ``01``)."""

from __future__ import annotations

from sealmark.errors import InvalidArgument

KEY_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"


def key_id(number: int) -> str:
    """The id of a tenant's ``number``-th key (1..4095). Raises InvalidArgument beyond."""
    if not 1 <= number < 64 * 64:
        raise InvalidArgument("key_id", "a tenant may have at most 4095 keys")
    return KEY_ALPHABET[number // 64] + KEY_ALPHABET[number % 64]
