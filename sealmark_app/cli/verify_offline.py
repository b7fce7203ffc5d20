"""The offline half of ``sealmark verify``: the brand's published key set (the file GetKeys
writes) and the signature check of a code against it, with no network at all. Split from
``verifying`` so that each file reads as one concern."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sealmark.crypto.signature import KEY_ID, canonical_bytes, decode_ai8030
from sealmark.crypto.signature import verify as signature_holds
from sealmark.errors import InvalidArgument
from sealmark.gs1 import GS1Code

ONLY_SIGNATURE = "offline check: the code's state, recalls and clone signals were not checked"


@dataclass(frozen=True)
class PublishedKey:
    """One key of a brand's key set; times as ISO 8601 text, None when unset."""

    key_id: str
    public_key: bytes
    created_at: str | None = None
    retired_at: str | None = None
    revoked_at: str | None = None  # declared compromised: its signatures prove nothing
    revoke_reason: str = ""


@dataclass(frozen=True)
class KeySet:
    source: str  # the file it was read from
    tenant: str
    keys: dict[str, PublishedKey]


def load_key_set(path: Path) -> KeySet:
    """Read a key file in either format of :data:`KEYS_HELP`. Raises InvalidArgument naming
    ``--keys`` and the file when it is missing, unreadable, not JSON or not a key set."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidArgument("--keys", f"{path}: no such file") from exc
    except OSError as exc:
        raise InvalidArgument("--keys", f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument("--keys", f"{path}: not a UTF-8 text file") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            "--keys", f"{path}: not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
        ) from exc
    return parse_key_set(document, str(path))


def parse_key_set(document: Any, source: str) -> KeySet:
    """The key set in a parsed key file. Fails closed: one bad entry, a repeated key id or no
    keys at all raise InvalidArgument naming ``--keys``, the file and the entry."""

    def bad(where: str, why: str) -> InvalidArgument:
        return InvalidArgument("--keys", f"{source}: {where}: {why}")

    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise bad("keys", "no list of keys (want `sealmark keys export` output or a key set)")
    tenant = document.get("tenant_id", document.get("tenant", ""))
    if not isinstance(tenant, str):
        raise bad("tenant", "not a string")
    keys: dict[str, PublishedKey] = {}
    for index, entry in enumerate(document["keys"]):
        where = f"keys[{index}]"
        if not isinstance(entry, dict):
            raise bad(where, "not an object")
        key_id = entry.get("key_id")
        if not isinstance(key_id, str) or not KEY_ID.match(key_id):
            raise bad(f"{where}.key_id", f"{key_id!r}, want 2 base64url characters")
        if key_id in keys:
            raise bad(f"{where}.key_id", f"key {key_id} appears twice")
        algorithm = entry.get("algorithm", "Ed25519")
        if algorithm != "Ed25519":
            raise bad(f"{where}.algorithm", f"{algorithm!r}; only Ed25519 keys can be checked")
        public_key = _public_key(entry.get("public_key"))
        if public_key is None:
            raise bad(f"{where}.public_key", "want 32 bytes as 64 hex digits or base64url")
        times: dict[str, str | None] = {}
        for name in ("created_at", "retired_at", "revoked_at"):
            value = entry.get(name)
            times[name] = None if value is None else _timestamp(value)
            if value is not None and times[name] is None:
                raise bad(f"{where}.{name}", f"{value!r} is not an ISO 8601 time")
        reason = entry.get("revoke_reason") or ""
        if not isinstance(reason, str):
            raise bad(f"{where}.revoke_reason", "not a string")
        keys[key_id] = PublishedKey(key_id, public_key, revoke_reason=reason, **times)
    if not keys:
        raise bad("keys", "empty: no key to check a signature with")
    return KeySet(source, tenant, keys)


def _public_key(value: Any) -> bytes | None:
    """32 bytes from hex (``keys export``) or base64url / base64, padded or not; else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            raw = bytes.fromhex(text)
        else:
            body = text.rstrip("=")
            raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _timestamp(value: Any) -> str | None:
    """A time as ISO 8601 text (UTC when it names no zone), or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


class Outcome(StrEnum):
    VALID = "valid"
    REVOKED_KEY = "revoked_key"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    NO_SIGNATURE = "no_signature"
    UNPARSEABLE = "unparseable"


@dataclass(frozen=True)
class OfflineCheck:
    outcome: Outcome
    message: str
    code: GS1Code | None = None
    key_id: str | None = None  # the key the code names
    key: PublishedKey | None = None  # that key, when the key set has it

    @property
    def trusted(self) -> bool:
        return self.outcome is Outcome.VALID

    @property
    def signature_valid(self) -> bool:
        return self.outcome in (Outcome.VALID, Outcome.REVOKED_KEY)


def check_offline(payload: str, keys: KeySet, *, today: date) -> OfflineCheck:
    """Check the signature of a scanned code against ``keys``, rebuilding the bytes the
    issuer signed (``issuer.minting``: lot as printed, expiry as the resolved date's YYMMDD).
    Never raises: every way a code can fail is an outcome with a message. ``today`` picks the
    century of the code's dates (GS1 §7.12)."""
    try:
        code = GS1Code.from_scan(payload, today=today, field="PAYLOAD")
    except InvalidArgument as exc:
        return OfflineCheck(Outcome.UNPARSEABLE, f"not a code that can be checked: {exc}")
    if code.signature is None and code.mac is not None:
        return OfflineCheck(
            Outcome.NO_SIGNATURE,
            "no signature: the code carries a compact-profile MAC in (92), which only the "
            "brand's Verifier holds the key to: verify it online",
            code,
        )
    if code.signature is None:
        return OfflineCheck(
            Outcome.NO_SIGNATURE,
            "no signature: the code carries no (8030), so there is nothing to check offline; "
            "printed HRI never carries it: verify the Digital Link or element string, or online",
            code,
        )
    try:
        key_id, signature = decode_ai8030(code.signature, "(8030)")
    except InvalidArgument as exc:
        return OfflineCheck(Outcome.BAD_SIGNATURE, f"signature INVALID: {exc}", code)
    key = keys.keys.get(key_id)
    if key is None:
        return OfflineCheck(
            Outcome.UNKNOWN_KEY,
            f"unknown key: the code names key {key_id}, which {keys.source} does not hold "
            f"(it has {', '.join(sorted(keys.keys))}); export the brand's current key set, "
            "or the code is not this brand's",
            code,
            key_id,
        )
    expiry = code.expiry.strftime("%y%m%d") if code.expiry is not None else ""
    signed = canonical_bytes(code.gtin, code.serial, code.lot or "", expiry, key_id)
    if not signature_holds(key.public_key, signed, signature):
        return OfflineCheck(
            Outcome.BAD_SIGNATURE,
            f"signature INVALID: key {key_id} did not sign this code; it was altered or forged",
            code,
            key_id,
            key,
        )
    if key.revoked_at:
        why = f" ({key.revoke_reason})" if key.revoke_reason else ""
        return OfflineCheck(
            Outcome.REVOKED_KEY,
            f"NOT TRUSTED: valid signature, but under key {key_id}, revoked at "
            f"{key.revoked_at}{why}: the key was declared compromised, so whoever holds it "
            "could have signed this code",
            code,
            key_id,
            key,
        )
    return OfflineCheck(Outcome.VALID, f"signature valid — {ONLY_SIGNATURE}", code, key_id, key)


def offline_document(check: OfflineCheck, keys: KeySet) -> dict[str, Any]:
    """What ``--offline --json`` prints."""
    code = check.code
    key = check.key
    return {
        "mode": "offline",
        "result": check.outcome.value,
        "trusted": check.trusted,
        "signature_valid": check.signature_valid,
        "message": check.message,
        "checked": "signature only; the code's state, recalls and clone signals were not checked",
        "keys_file": keys.source,
        "tenant": keys.tenant,
        "code": None
        if code is None
        else {
            "gtin": code.gtin,
            "serial": code.serial,
            "lot": code.lot,
            "expiry": _iso(code.expiry),
            "production_date": _iso(code.production_date),
            "key_id": check.key_id,
        },
        "key": None
        if key is None
        else {
            "key_id": key.key_id,
            "algorithm": "Ed25519",
            "created_at": key.created_at,
            "retired_at": key.retired_at,
            "revoked_at": key.revoked_at,
            "revoke_reason": key.revoke_reason,
        },
    }


def render_offline(check: OfflineCheck, keys: KeySet) -> str:
    """The offline result for people: what was found, then the code's facts and the key."""
    lines = [check.message]
    if check.signature_valid and not check.trusted:
        lines.append(ONLY_SIGNATURE)
    rows: list[tuple[str, str]] = [("brand", keys.tenant)] if keys.tenant else []
    if check.code is not None:
        code = check.code
        rows += [("gtin", code.gtin), ("serial", code.serial)]
        if code.lot is not None:
            rows.append(("lot", code.lot))
        if code.expiry is not None:
            rows.append(("expiry", code.expiry.isoformat()))
        if code.production_date is not None:
            rows.append(("produced", code.production_date.isoformat()))
    if check.key is not None:
        key = check.key
        facts = [f"created {key.created_at}"] if key.created_at else []
        if key.revoked_at:
            facts.append(f"REVOKED {key.revoked_at}")
        elif key.retired_at:
            facts.append(f"retired {key.retired_at}, its codes stay valid")
        rows.append(("key", f"{key.key_id} (Ed25519{''.join(', ' + f for f in facts)})"))
    elif check.key_id:
        rows.append(("key", f"{check.key_id} (not in {keys.source})"))
    rows.append(("keys file", keys.source))
    width = max(len(label) for label, _ in rows)
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    if check.trusted:
        lines.append("for the verdict (state, recalls, clones) run `sealmark verify` online")
    return "\n".join(lines) + "\n"


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
