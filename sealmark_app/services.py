"""Which services exist and how each joins a server. Imports are lazy: naming a service here
loads nothing until it is served."""

from __future__ import annotations

import importlib

from sealmark.bootstrap import Container
from sealmark.errors import InvalidArgument
from sealmark.server.app import ServiceBinding
from sealmark.settings import SERVICES


def binding_for(name: str, container: Container) -> ServiceBinding:
    """The binding of service ``name`` (issuer, aggregator, verifier, audit)."""
    if name not in SERVICES:
        raise InvalidArgument("service", f"{name!r}, want one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"{name}.grpc_service")
    binding: ServiceBinding = module.binding(container)
    return binding
