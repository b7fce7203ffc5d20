"""The Aggregator's gRPC face. Every RPC of the contract is inherited from the generated base
class and answers UNIMPLEMENTED until the Aggregator issue lands; the access policy is final."""

from __future__ import annotations

import grpc

from sealmark.bootstrap import Container
from sealmark.server.app import ServiceBinding
from sealmark.server.policy import READ, policy
from sealmark.tenancy.model import Role
from sealmark.v1 import aggregator_pb2_grpc

POLICY = policy(
    "Aggregator",
    {
        frozenset({Role.LINE}): ["Pack", "Unpack", "Replace", "Sample", "Rework", "PackStream"],
        frozenset({Role.LOGISTICS}): ["Ship", "Receive", "Decommission", "UndoDecommission"],
        READ: ["ListChildren", "GetCounts", "GetAncestors", "GetContainmentHistory"],
    },
)


class AggregatorService(aggregator_pb2_grpc.AggregatorServicer):
    def __init__(self, container: Container) -> None:
        self._container = container


def binding(container: Container) -> ServiceBinding:
    def register(server: grpc.Server) -> None:
        # The .pyi marks every RPC abstract; the generated runtime base class answers
        # UNIMPLEMENTED for the ones not built yet, which is the contract we want.
        servicer = AggregatorService(container)  # type: ignore[abstract]
        aggregator_pb2_grpc.add_AggregatorServicer_to_server(servicer, server)

    return ServiceBinding("aggregator", "sealmark.v1.Aggregator", register, POLICY)
