"""Client certificates as credentials: the pure rules (what a certificate stands for, how it
combines with a token) and the use cases on the in-memory store."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from sealmark.clock import FixedClock
from sealmark.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from sealmark.storage.memory import MemoryStore
from sealmark.tenancy import cert_usecases, usecases
from sealmark.tenancy.certs import (
    NO_CERT,
    CertIdentity,
    CertOutcome,
    ClientCert,
    MatchKind,
    combine,
    registration_id,
    resolve,
    validate_match,
)
from sealmark.tenancy.model import Principal, Role
from sealmark_app.cli.certs import normalize_subject

T0 = datetime(2026, 11, 1, tzinfo=UTC)
LINE_A = Principal("acme", frozenset({Role.LINE}), token_id="tok-a")
ADMIN_A = Principal("acme", frozenset({Role.ADMIN}), token_id="tok-admin")
LINE_B = Principal("other", frozenset({Role.LINE}), token_id="tok-b")


def _reg(tenant: str, roles: set[Role], value: str, *, revoked: bool = False) -> ClientCert:
    kind = MatchKind.SUBJECT if value.startswith("CN=") else MatchKind.SAN
    return ClientCert(
        registration_id(os.urandom(10)),
        tenant,
        frozenset(roles),
        "line 3",
        kind,
        value,
        T0,
        T0 if revoked else None,
    )


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (MatchKind.SUBJECT, "CN=line-3,O=Acme"),
        (MatchKind.SUBJECT, r"CN=a\,b,O=Acme"),
        (MatchKind.SAN, "DNS:line3.plant.example"),
        (MatchKind.SAN, "URI:spiffe://acme/line3"),
        (MatchKind.SAN, "email:line3@acme.example"),
        (MatchKind.SAN, "IP:10.0.0.7"),
        (MatchKind.SAN, "IP:fd00::7"),
    ],
)
def test_good_identities(kind: MatchKind, value: str) -> None:
    assert validate_match(kind, value) == value


def test_ip_sans_are_stored_in_their_canonical_spelling() -> None:
    assert validate_match(MatchKind.SAN, "IP:fd00:0:0::0007") == "IP:fd00::7"


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (MatchKind.SUBJECT, "", "1..500"),
        (MatchKind.SUBJECT, " CN=x", "surrounding spaces"),
        (MatchKind.SUBJECT, "line-3", "is not a DN"),
        (MatchKind.SUBJECT, "CN=x,,O=y", "is not a DN"),
        (MatchKind.SAN, "line3.plant.example", "want a typed SAN"),
        (MatchKind.SAN, "dns:line3", "want a typed SAN"),
        (MatchKind.SAN, "DNS:", "want a typed SAN"),
        (MatchKind.SAN, "IP:10.0.0.300", "is not an IP address"),
        (MatchKind.SAN, "DNS:" + "a" * 500, "1..500"),
    ],
)
def test_bad_identities_name_the_field(kind: MatchKind, value: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason) as caught:
        validate_match(kind, value, "value")
    assert caught.value.field == "value"


def test_an_identity_is_matched_by_subject_and_every_san() -> None:
    identity = CertIdentity("CN=line-3,O=Acme", ("DNS:l3.example", "URI:spiffe://acme/l3"))
    assert identity.match_keys() == [
        (MatchKind.SUBJECT, "CN=line-3,O=Acme"),
        (MatchKind.SAN, "DNS:l3.example"),
        (MatchKind.SAN, "URI:spiffe://acme/l3"),
    ]


def test_resolve() -> None:
    unregistered = resolve([])
    assert unregistered.presented and unregistered.principal is None and not unregistered.refused
    only = _reg("acme", {Role.LINE}, "CN=line-3,O=Acme")
    mapped = resolve([only])
    assert mapped.principal == Principal(
        "acme", frozenset({Role.LINE}), token_id=only.id, cert_id=only.id
    )
    assert resolve([_reg("acme", {Role.LINE}, "CN=x", revoked=True)]).refused
    # An active registration wins over a revoked one of the same identity (re-registered).
    again = resolve([_reg("acme", {Role.LINE}, "CN=x", revoked=True), only])
    assert again.principal is not None and not again.refused
    # Subject and SAN registered for the same tenant: the roles add up.
    both = resolve([only, _reg("acme", {Role.LOGISTICS}, "DNS:l3.example")])
    assert both.principal is not None
    assert both.principal.roles == {Role.LINE, Role.LOGISTICS}
    # ...for two tenants: the certificate is refused (whose would it be?).
    assert resolve([only, _reg("other", {Role.LINE}, "DNS:l3.example")]).refused


def test_combine_token_only_and_cert_only() -> None:
    assert combine(LINE_A, NO_CERT) == LINE_A
    cert_a = CertOutcome(presented=True, principal=Principal("acme", frozenset({Role.LINE})))
    assert combine(None, cert_a) == cert_a.principal
    with pytest.raises(Unauthenticated, match="Bearer"):
        combine(None, NO_CERT)


def test_combine_unregistered_or_revoked_certificates() -> None:
    unregistered = CertOutcome(presented=True)
    with pytest.raises(Unauthenticated, match="not registered or revoked"):
        combine(None, unregistered)
    assert combine(LINE_A, unregistered) == LINE_A  # the certificate only carried TLS
    revoked = CertOutcome(presented=True, refused=True)
    with pytest.raises(Unauthenticated, match="not registered or revoked"):
        combine(ADMIN_A, revoked)  # a valid token does not rescue a revoked certificate


def test_combine_token_and_cert() -> None:
    cert_a = CertOutcome(
        presented=True, principal=Principal("acme", frozenset({Role.LINE}), cert_id="crt_x")
    )
    both = combine(ADMIN_A, cert_a)
    assert both.tenant_id == "acme" and both.roles == {Role.ADMIN}  # the token's roles decide
    assert (both.token_id, both.cert_id) == ("tok-admin", "crt_x")
    with pytest.raises(PermissionDenied, match="different tenants"):
        combine(LINE_B, cert_a)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    for tenant_id, prefix in (("acme", "9520123"), ("other", "4012345")):
        usecases.create_tenant(
            s.unit_of_work,
            FixedClock(T0),
            tenant_id=tenant_id,
            name=tenant_id,
            company_prefixes=[prefix],
            resolver_host=f"id.{tenant_id}.example",
        )
    return s


def _register(store: MemoryStore, value: str, kind: MatchKind = MatchKind.SUBJECT) -> ClientCert:
    return cert_usecases.register_client_cert(
        store.unit_of_work,
        FixedClock(T0),
        os.urandom,
        tenant_id="acme",
        roles=["line"],
        name="line 3",
        kind=kind,
        value=value,
    )


def test_register_authenticate_revoke(store: MemoryStore) -> None:
    cert = _register(store, "CN=line-3,O=Acme")
    identity = CertIdentity("CN=line-3,O=Acme", ("DNS:l3.example",))
    outcome = cert_usecases.authenticate_certificate(store.unit_of_work, identity)
    assert outcome.principal is not None and outcome.principal.cert_id == cert.id
    assert [c.id for c in cert_usecases.client_certs_of(store.unit_of_work, "acme")] == [cert.id]
    with pytest.raises(NotFound):  # another tenant's registration is not theirs to revoke
        cert_usecases.revoke_client_cert(
            store.unit_of_work, FixedClock(T0), tenant_id="other", cert_id=cert.id
        )
    cert_usecases.revoke_client_cert(
        store.unit_of_work, FixedClock(T0), tenant_id="acme", cert_id=cert.id
    )
    assert cert_usecases.authenticate_certificate(store.unit_of_work, identity).refused
    with store.unit_of_work() as uow:
        kinds = [e.kind for e in uow.events.read("acme")]
    assert kinds[-2:] == ["client_cert.registered", "client_cert.revoked"]


def test_register_refuses_bad_input(store: MemoryStore) -> None:
    with pytest.raises(InvalidArgument) as caught:
        _register(store, "line3.example", MatchKind.SAN)
    assert caught.value.field == "value"
    with pytest.raises(InvalidArgument, match="role"):
        cert_usecases.register_client_cert(
            store.unit_of_work,
            FixedClock(T0),
            os.urandom,
            tenant_id="acme",
            roles=["root"],
            name="x",
            kind=MatchKind.SAN,
            value="DNS:x.example",
        )
    with pytest.raises(NotFound):
        cert_usecases.client_certs_of(store.unit_of_work, "nobody")
    _register(store, "DNS:l3.example", MatchKind.SAN)
    with pytest.raises(AlreadyExists):
        _register(store, "DNS:l3.example", MatchKind.SAN)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("CN=line-3,O=Acme", "CN=line-3,O=Acme"),
        ("CN=line-3, O=Acme", "CN=line-3,O=Acme"),
        ("  CN=line-3,   O=Acme, C=DE ", "CN=line-3,O=Acme,C=DE"),
    ],
)
def test_cli_subjects_are_stored_as_tls_reports_them(typed: str, stored: str) -> None:
    assert normalize_subject(typed, "--subject") == stored


def test_cli_refuses_a_subject_that_is_not_a_dn() -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_subject("line 3", "--subject")
    assert caught.value.field == "--subject"
