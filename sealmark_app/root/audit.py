"""How the Audit is built from the process container."""

from __future__ import annotations

from audit import grpc_service
from sealmark.bootstrap import Container
from sealmark.server.app import ServiceBinding


def service_binding(container: Container) -> ServiceBinding:
    return grpc_service.binding(container)
