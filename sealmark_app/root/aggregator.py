"""How the Aggregator is built from the process container: its storage port on the
container's PostgreSQL database, the use cases on that port and the container's clock, and
the gRPC binding on those use cases."""

from __future__ import annotations

from aggregator import grpc_service
from aggregator.postgres import PostgresAggregationStorage
from aggregator.usecases import Aggregator
from sealmark.server.app import ServiceBinding
from sealmark_app.root.container import Container


def build_aggregator(container: Container) -> Aggregator:
    return Aggregator(PostgresAggregationStorage(container.database), container.clock)


def service_binding(container: Container) -> ServiceBinding:
    return grpc_service.binding(build_aggregator(container))
