"""Pure domain model of tenancy and identity. Imports only the standard library and sealmark.gs1.

A *tenant* is a brand owner with one or more GS1 Company Prefixes. It may only act on GTINs
and SSCCs under its own prefixes. A *principal* is what an authenticated API token stands for:
one tenant and a set of roles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sealmark.errors import InvalidArgument, PermissionDenied
from sealmark.tenancy.alphabets import SERIAL_ALPHABETS, SerialAlphabet, alphabet_named


class Role(StrEnum):
    """What a credential may do. A token carries one or more roles for exactly one tenant."""

    LINE = "line"  # packaging line: pools, issuance, commission/scrap/return, packing
    LOGISTICS = "logistics"  # ship, receive, decommission
    AUDITOR = "auditor"  # read-only audit: alerts, trace, reports, exports
    ADMIN = "admin"  # everything for the tenant, including recall, keys and tokens


class PackLevel(StrEnum):
    """Packaging hierarchy levels, item (sellable unit) upwards."""

    ITEM = "item"
    BUNDLE = "bundle"
    CASE = "case"
    PALLET = "pallet"


class CodeProfile(StrEnum):
    """How a product's codes prove they are ours (chosen when the product is registered)."""

    SIGNED = "signed"  # Ed25519 signature in AI (8030): anyone with the key set checks it offline
    COMPACT = "compact"  # 64-bit MAC in AI (92): a small symbol, checked online by the Verifier


# Tenant ids are short slugs, safe in URLs, logs and Redis keys.
_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
# ISO 3166-1 alpha-2, optionally an ISO 3166-2 subdivision ("CN", "CN-31", "DE-BY").
_MARKET = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
# A DNS host name, optionally with a port; no scheme, no path.
_HOST = re.compile(
    r"^(?=.{1,253}(:\d{1,5})?$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:\d{1,5})?$"
)
_PREFIX = re.compile(r"^\d{4,12}$")


def validate_tenant_id(value: str, field_name: str = "tenant_id") -> str:
    if not _TENANT_ID.match(value):
        raise InvalidArgument(field_name, f"{value!r} is not a tenant id (a-z, 0-9, '-', 2..63)")
    return value


def validate_market(value: str, field_name: str = "market") -> str:
    if not _MARKET.match(value):
        raise InvalidArgument(
            field_name, f"{value!r} is not a market (ISO 3166 code such as 'DE' or 'CN-31')"
        )
    return value


def validate_resolver_host(value: str, field_name: str = "resolver_host") -> str:
    if not _HOST.match(value):
        raise InvalidArgument(
            field_name, f"{value!r} is not a host name (like 'id.example.com', no scheme or path)"
        )
    return value.lower()


def validate_company_prefix(value: str, field_name: str = "company_prefix") -> str:
    if not _PREFIX.match(value):
        raise InvalidArgument(field_name, f"{value!r} is not a GS1 Company Prefix (4..12 digits)")
    return value


@dataclass(frozen=True, slots=True)
class Tenant:
    """A brand. ``company_prefixes`` are GS1 Company Prefixes (U.P.C. prefixes with a leading 0)."""

    id: str
    name: str
    company_prefixes: tuple[str, ...]
    resolver_host: str
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        validate_tenant_id(self.id, "Tenant.id")
        if not self.name.strip() or len(self.name) > 200:
            raise InvalidArgument("Tenant.name", "must be 1..200 characters")
        if not self.company_prefixes:
            raise InvalidArgument("Tenant.company_prefixes", "at least one prefix is required")
        for prefix in self.company_prefixes:
            validate_company_prefix(prefix, "Tenant.company_prefixes")
        validate_resolver_host(self.resolver_host, "Tenant.resolver_host")

    def owns_gtin(self, gtin14: str) -> bool:
        """True when the GTIN-14's company prefix (digits after the indicator) is one of ours.

        GTIN-8 (``000000`` + 8 digits) uses a separate EAN-8 prefix scheme and is only owned
        when a prefix is registered for it in GTIN-14 form.
        """
        return any(gtin14[1:].startswith(p) for p in self.company_prefixes)

    def owns_sscc(self, sscc18: str) -> bool:
        """True when the SSCC's company prefix (digits after the extension digit) is one of ours."""
        return any(sscc18[1:].startswith(p) for p in self.company_prefixes)

    def prefix_length_for(self, key: str) -> int:
        """The company-prefix length of a GTIN-14 or SSCC-18 we own (for EPC URNs)."""
        matches = [p for p in self.company_prefixes if key[1:].startswith(p)]
        if not matches:
            raise PermissionDenied(f"{key} is not under a company prefix of tenant {self.id}")
        return len(max(matches, key=len))


@dataclass(frozen=True, slots=True)
class Product:
    """A trade item (GTIN) of a tenant, with the rules its serials follow."""

    tenant_id: str
    gtin: str  # always 14 digits
    name: str
    pack_level: PackLevel = PackLevel.ITEM
    default_market: str | None = None
    serial_alphabet: str = "numeric"  # a name of SERIAL_ALPHABETS; see .alphabet
    serial_length: int = 12
    pin_length: int = 6
    created_at: datetime | None = None
    code_profile: CodeProfile = CodeProfile.SIGNED

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "code_profile", CodeProfile(self.code_profile))
        except ValueError:
            wanted = ", ".join(p.value for p in CodeProfile)
            raise InvalidArgument(
                "Product.code_profile", f"{self.code_profile!r}, want one of {wanted}"
            ) from None
        if not (len(self.gtin) == 14 and self.gtin.isdigit()):
            raise InvalidArgument("Product.gtin", f"{self.gtin!r}: want 14 digits")
        if not self.name.strip() or len(self.name) > 200:
            raise InvalidArgument("Product.name", "must be 1..200 characters")
        if self.default_market is not None:
            validate_market(self.default_market, "Product.default_market")
        alphabet_named(self.serial_alphabet, "Product.serial_alphabet")
        if not 6 <= self.serial_length <= 20:
            raise InvalidArgument("Product.serial_length", f"{self.serial_length}, want 6..20")
        if not 4 <= self.pin_length <= 12:
            raise InvalidArgument("Product.pin_length", f"{self.pin_length}, want 4..12")

    @property
    def alphabet(self) -> SerialAlphabet:
        """The symbols this product's serials are drawn from (``serial_alphabet`` is its name)."""
        return SERIAL_ALPHABETS[self.serial_alphabet]

    @property
    def serial_space(self) -> int:
        """How many distinct serials this product's alphabet and length allow."""
        return self.alphabet.space(self.serial_length)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored credential. Only ``secret_hash`` is kept; the secret is shown once at creation."""

    id: str
    tenant_id: str
    roles: frozenset[Role]
    name: str
    secret_hash: bytes
    created_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one tenant and its roles. Built by the auth interceptor from a token,
    a registered client certificate (``cert_id``), or both. ``token_id`` names the acting
    credential in records: the token's id, or the certificate registration's without one."""

    tenant_id: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    token_id: str = ""
    cert_id: str = ""

    def require(self, *allowed: Role) -> None:
        """PermissionDenied unless the principal holds one of ``allowed``; admin always may."""
        if Role.ADMIN in self.roles or self.roles.intersection(allowed):
            return
        wanted = ", ".join(r.value for r in allowed)
        raise PermissionDenied(f"this call needs one of the roles: {wanted}")
