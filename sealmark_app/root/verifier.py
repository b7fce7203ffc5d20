"""How the Verifier is built from the process container."""

from __future__ import annotations

from sealmark.bootstrap import Container
from sealmark.server.app import ServiceBinding
from verifier import grpc_service


def service_binding(container: Container) -> ServiceBinding:
    return grpc_service.binding(container)
