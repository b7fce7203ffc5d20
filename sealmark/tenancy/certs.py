"""Client certificates as credentials (mutual TLS). Pure: imports only the standard library and
the tenancy model.

A packaging line may authenticate with the client certificate of its TLS connection instead
of (or beside) a bearer token. The server's TLS layer has already checked that the certificate
chains to the configured client CA and is within its validity period; what is decided here is
*who* the certificate stands for. A :class:`ClientCert` registration maps one certificate
identity, its subject distinguished name or one of its subject alternative names, to a tenant
and roles. Registrations are revoked, never deleted: a certificate whose registrations are all
revoked is refused outright, while an active registration for the same identity (added again
after a revocation) re-admits it.

How a call's credentials combine (:func:`combine`):

- no token, no mapped certificate: Unauthenticated;
- a certificate whose every matching registration is revoked: Unauthenticated, token or not;
- a certificate matching active registrations of more than one tenant: Unauthenticated;
- token only, or a token with a certificate nobody registered: the token decides;
- mapped certificate only: the certificate's tenant and roles;
- both: the tenants must agree (else PermissionDenied) and the token's roles decide, since the
  token is what the caller presented for this very call.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sealmark.errors import InvalidArgument, PermissionDenied, Unauthenticated
from sealmark.tenancy.model import Principal, Role


class MatchKind(StrEnum):
    """Which part of a certificate a registration matches."""

    SUBJECT = "subject"  # the subject DN in RFC 4514 form, most specific first: "CN=line-3,O=Acme"
    SAN = "san"  # one subject alternative name, typed: "DNS:…", "URI:…", "email:…", "IP:…"


SAN_TYPES = ("DNS", "URI", "email", "IP")
_ID = re.compile(r"^crt_[a-z2-7]{12}$")
_DN_PART = re.compile(r"^[A-Za-z][A-Za-z0-9.-]*=.+$")
UNKNOWN_CERT = "client certificate not registered or revoked"


@dataclass(frozen=True, slots=True)
class CertIdentity:
    """What the TLS layer reports of a verified peer certificate."""

    subject: str
    sans: tuple[str, ...] = ()

    def match_keys(self) -> list[tuple[MatchKind, str]]:
        """Every (kind, value) a registration could match, subject first."""
        keys = [(MatchKind.SUBJECT, self.subject)] if self.subject else []
        return keys + [(MatchKind.SAN, san) for san in self.sans]


@dataclass(frozen=True, slots=True)
class ClientCert:
    """A registered client certificate identity. ``id`` reads ``crt_`` + 12 base32 chars."""

    id: str
    tenant_id: str
    roles: frozenset[Role]
    name: str
    kind: MatchKind
    value: str
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise InvalidArgument("ClientCert.id", f"{self.id!r}: want crt_ + 12 base32 chars")
        if not self.roles:
            raise InvalidArgument("ClientCert.roles", "at least one role is required")
        if not self.name.strip() or len(self.name) > 100:
            raise InvalidArgument("ClientCert.name", "must be 1..100 characters")
        validate_match(self.kind, self.value, "ClientCert.value")


def validate_match(kind: MatchKind, value: str, field: str = "value") -> str:
    """Check the shape of a registration's value and return it as TLS reports it (an IP in
    its canonical spelling: ``IP:fd00:0::7`` → ``IP:fd00::7``). Raises InvalidArgument naming
    ``field``."""
    if not value or len(value) > 500 or value != value.strip():
        raise InvalidArgument(field, "must be 1..500 characters without surrounding spaces")
    if kind is MatchKind.SUBJECT:
        if not all(_DN_PART.match(part) for part in _split_dn(value)):
            raise InvalidArgument(field, f"{value!r} is not a DN like 'CN=line-3,O=Acme'")
        return value
    san_type, sep, rest = value.partition(":")
    if not sep or san_type not in SAN_TYPES or not rest:
        wanted = ", ".join(f"{t}:…" for t in SAN_TYPES)
        raise InvalidArgument(field, f"{value!r}: want a typed SAN, one of {wanted}")
    if san_type == "IP":
        try:
            return f"IP:{ipaddress.ip_address(rest)}"
        except ValueError:
            raise InvalidArgument(field, f"{rest!r} is not an IP address") from None
    return value


def _split_dn(value: str) -> list[str]:
    """RDNs of an RFC 4514 string (a backslash escapes a comma inside a value)."""
    return re.split(r"(?<!\\),", value)


def registration_id(random_bytes: bytes) -> str:
    """``crt_`` + 12 base32 characters from 10 random bytes."""
    if len(random_bytes) != 10:
        raise ValueError("want 10 random bytes")
    return "crt_" + base64.b32encode(random_bytes).decode("ascii")[:12].lower()


@dataclass(frozen=True, slots=True)
class CertOutcome:
    """What the connection's certificate amounts to. ``presented``: the peer showed one;
    ``principal``: it is mapped; ``refused``: it must not be accepted whatever else the call
    carries (all its registrations revoked, or active ones of several tenants)."""

    presented: bool = False
    principal: Principal | None = None
    refused: bool = False


NO_CERT = CertOutcome()


def resolve(matches: Iterable[ClientCert]) -> CertOutcome:
    """What a presented certificate stands for, given every registration matching one of its
    :meth:`CertIdentity.match_keys` (active or revoked)."""
    found = list(matches)
    active = [m for m in found if m.revoked_at is None]
    if not active:
        # All revoked: refused even beside a token. Never registered: not a credential, but
        # no reason to refuse a token on the same connection either.
        return CertOutcome(presented=True, refused=bool(found))
    if len({m.tenant_id for m in active}) > 1:
        return CertOutcome(presented=True, refused=True)
    roles = frozenset(role for m in active for role in m.roles)
    first = min(active, key=lambda m: m.id)
    # token_id names the acting credential in records (who packed, who held a lot): here the
    # registration, so that "the same party" rules hold for certificate callers too.
    principal = Principal(first.tenant_id, roles, token_id=first.id, cert_id=first.id)
    return CertOutcome(presented=True, principal=principal)


def combine(token: Principal | None, cert: CertOutcome) -> Principal:
    """The caller of one RPC from its token (if any) and its certificate. See the module
    docstring for the rules. Raises Unauthenticated or PermissionDenied."""
    if cert.refused:
        raise Unauthenticated(UNKNOWN_CERT)
    if token is None:
        if cert.principal is not None:
            return cert.principal
        if cert.presented:
            raise Unauthenticated(UNKNOWN_CERT)
        raise Unauthenticated("this call needs 'authorization: Bearer <token>' metadata")
    if cert.principal is None:
        return token
    if cert.principal.tenant_id != token.tenant_id:
        raise PermissionDenied("the token and the client certificate belong to different tenants")
    return Principal(token.tenant_id, token.roles, token.token_id, cert.principal.cert_id)


def lookup_keys(identity: CertIdentity) -> Sequence[tuple[str, str]]:
    """(kind, value) pairs as stored, for a repository lookup."""
    return [(kind.value, value) for kind, value in identity.match_keys()]
