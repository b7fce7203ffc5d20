"""How the Issuer is built from the process container."""

from __future__ import annotations

from issuer import grpc_service
from issuer.bootstrap import build_issuer
from sealmark.bootstrap import Container
from sealmark.server.app import ServiceBinding

__all__ = ["build_issuer", "service_binding"]


def service_binding(container: Container) -> ServiceBinding:
    return grpc_service.binding(container)
