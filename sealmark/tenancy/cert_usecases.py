"""Client-certificate use cases: register, list and revoke the certificate identities that
stand for a tenant and roles, and turn a verified peer certificate into a credential.

Plain functions that take their ports, like :mod:`sealmark.tenancy.usecases`; every write
appends a domain event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from sealmark.clock import Clock
from sealmark.errors import NotFound
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.tenancy.certs import (
    CertIdentity,
    CertOutcome,
    ClientCert,
    MatchKind,
    lookup_keys,
    registration_id,
    resolve,
    validate_match,
)
from sealmark.tenancy.tokens import RandomBytes
from sealmark.tenancy.usecases import _record, parse_roles


def register_client_cert(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    random_bytes: RandomBytes,
    *,
    tenant_id: str,
    roles: Iterable[str],
    name: str,
    kind: MatchKind,
    value: str,
) -> ClientCert:
    """Map a certificate identity (subject DN or typed SAN) to the tenant and ``roles``.

    Raises InvalidArgument (naming ``roles``, ``name`` or ``value``), NotFound for an unknown
    tenant, AlreadyExists when an active registration has the same identity."""
    value = validate_match(kind, value, "value")
    cert = ClientCert(
        id=registration_id(random_bytes(10)),
        tenant_id=tenant_id,
        roles=parse_roles(roles),
        name=name,
        kind=kind,
        value=value,
        created_at=clock.now(),
    )
    with uow_factory() as uow:
        uow.tenants.get(tenant_id)
        uow.client_certs.add(cert)
        _record(
            uow,
            clock,
            tenant_id,
            "client_cert.registered",
            f"client_cert:{cert.id}",
            name=name,
            match=kind.value,
            value=value,
            roles=sorted(r.value for r in cert.roles),
        )
        uow.commit()
    return cert


def revoke_client_cert(
    uow_factory: UnitOfWorkFactory, clock: Clock, *, tenant_id: str, cert_id: str
) -> None:
    """Revoke a tenant's registration. Raises NotFound (also for another tenant's)."""
    with uow_factory() as uow:
        cert = uow.client_certs.get(cert_id)
        if cert.tenant_id != tenant_id:
            raise NotFound(f"client certificate {cert_id} not found")
        uow.client_certs.revoke(cert_id, clock.now())
        _record(uow, clock, tenant_id, "client_cert.revoked", f"client_cert:{cert_id}")
        uow.commit()


def client_certs_of(uow_factory: UnitOfWorkFactory, tenant_id: str) -> list[ClientCert]:
    """The tenant's registrations, revoked ones included. Raises NotFound for the tenant."""
    with uow_factory() as uow:
        uow.tenants.get(tenant_id)
        return list(uow.client_certs.list(tenant_id))


def authenticate_certificate(uow_factory: UnitOfWorkFactory, identity: CertIdentity) -> CertOutcome:
    """What a peer certificate (already verified against the client CA by TLS) stands for."""
    with uow_factory() as uow:
        matches = uow.client_certs.find(lookup_keys(identity))
    return resolve(matches)
