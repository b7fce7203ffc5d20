"""The composition root: the one place that turns settings into adapters, adapters into use
cases and use cases into servicers. ``sealmark serve``, the CLI, the bench and the tests'
fixtures all build through here; one module per service (``sealmark_app.root.<service>``)
holds that service's part. Imports are lazy: naming a service loads nothing until it is
served."""

from __future__ import annotations

import importlib

from sealmark.errors import InvalidArgument
from sealmark.server.app import ServiceBinding
from sealmark.settings import SERVICES
from sealmark_app.root.container import Container


def binding_for(name: str, container: Container) -> ServiceBinding:
    """The binding of service ``name`` (issuer, aggregator, verifier, audit), built once per
    container."""
    if name not in SERVICES:
        raise InvalidArgument("service", f"{name!r}, want one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"sealmark_app.root.{name}")
    binding: ServiceBinding = module.service_binding(container)
    return binding
